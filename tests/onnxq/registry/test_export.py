"""Export to ONNX with a parity check, on the pinned skl2onnx / onnx / protobuf set."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from onnxq.errors import ParityError
from onnxq.models.manifest import MODEL_FILE, Manifest
from onnxq.models.session import sha256_of
from onnxq.registry.demo import DEMO_MODEL_NAME
from onnxq.registry.export import ExportedModel, build_manifest, export_sklearn_classifier


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    return X.astype(np.float32), y


def fitted(estimator, data: tuple[np.ndarray, np.ndarray]):
    X, y = data
    return estimator.fit(X, y)


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(max_iter=1000),
        pytest.param(
            HistGradientBoostingClassifier(max_iter=30, random_state=0),
            # skl2onnx 1.20 puts numpy bools into AttributeProto.ints: protobuf 6.33 only
            # warns (protobuf 7 rejects them, which is why the export extra pins 6.33).
            marks=pytest.mark.filterwarnings(
                "ignore:Field onnx.AttributeProto.ints.*got a boolean:DeprecationWarning"
            ),
        ),
    ],
    ids=["logistic-regression", "hist-gradient-boosting"],
)
def test_an_exported_classifier_reproduces_scikit_learn(
    estimator, data: tuple[np.ndarray, np.ndarray]
) -> None:
    X, _ = data
    model = fitted(estimator, data)

    exported = export_sklearn_classifier(model, X)

    session = ort.InferenceSession(exported.onnx_bytes, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {"input": X})
    np.testing.assert_array_equal(labels, model.predict(X))
    np.testing.assert_allclose(probabilities, model.predict_proba(X), rtol=0, atol=1e-5)
    assert exported.parity.max_abs_diff <= 1e-5
    assert exported.parity.rows == len(X)
    assert exported.parity.compared == "probabilities"
    assert exported.class_labels == [0, 1, 2]
    assert all(type(label) is int for label in exported.class_labels)
    assert [spec.name for spec in exported.inputs] == ["input"]
    assert exported.inputs[0].shape == [None, 6]
    assert [(spec.name, spec.dtype) for spec in exported.outputs] == [
        ("label", "int64"),
        ("probabilities", "float32"),
    ]
    assert exported.outputs[1].shape == [None, 3]


def test_an_impossible_tolerance_raises_a_parity_error(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, _ = data
    model = fitted(LogisticRegression(max_iter=1000), data)

    with pytest.raises(ParityError, match="disagree") as caught:
        export_sklearn_classifier(model, X, tolerance=-1.0)

    assert caught.value.error_type == "parity_error"


def test_the_demo_manifest_records_its_parity_features_and_checksum(
    demo_model_dir: Path, demo_manifest: Manifest
) -> None:
    data = load_breast_cancer()

    assert demo_manifest.name == DEMO_MODEL_NAME
    assert demo_manifest.version == 1
    assert demo_manifest.parity.max_abs_diff <= 1e-5
    assert demo_manifest.parity.tolerance == 1e-5
    assert demo_manifest.parity.rows == 569
    assert demo_manifest.feature_names == [str(name) for name in data.feature_names]
    assert len(demo_manifest.features) == 30
    assert {feature.dtype for feature in demo_manifest.features} == {"float32"}
    assert demo_manifest.inputs[0].shape == [None, 30]
    assert demo_manifest.class_labels == [0, 1]
    assert demo_manifest.class_names == ["malignant", "benign"]
    model_file = demo_model_dir / DEMO_MODEL_NAME / "1" / MODEL_FILE
    assert demo_manifest.sha256 == sha256_of(model_file)
    assert demo_manifest.size_bytes == model_file.stat().st_size


def test_one_builder_makes_the_manifest_of_an_exported_graph(
    demo_model_dir: Path, demo_manifest: Manifest
) -> None:
    onnx_bytes = (demo_model_dir / DEMO_MODEL_NAME / "1" / MODEL_FILE).read_bytes()
    exported = ExportedModel.of(
        onnx_bytes,
        class_labels=[0, 1],
        parity=demo_manifest.parity,
        label_output="label",
        probability_output="probabilities",
    )

    manifest = build_manifest(
        exported, name="copy", version=3, feature_names=["a", "b"], source={"from": "test"}
    )

    assert (manifest.name, manifest.version) == ("copy", 3)
    assert manifest.sha256 == hashlib.sha256(onnx_bytes).hexdigest()
    assert manifest.size_bytes == len(onnx_bytes)
    assert [(f.name, f.dtype) for f in manifest.features] == [("a", "float32"), ("b", "float32")]
    assert manifest.inputs == demo_manifest.inputs  # read from the graph
    assert manifest.outputs == demo_manifest.outputs
    assert (manifest.label_output, manifest.probability_output) == ("label", "probabilities")
    assert manifest.parity == demo_manifest.parity
    assert manifest.source == {"from": "test"}
    assert manifest.class_names is None
