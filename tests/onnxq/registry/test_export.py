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
from onnxq.registry.export import build_manifest
from tests.support.exports import export_in_memory


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

    bundle, report = export_in_memory(model, X, nullable=[])
    manifest = build_manifest(bundle, report, name="m", version=1)

    session = ort.InferenceSession(bundle.onnx_bytes, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {"input": X})
    np.testing.assert_array_equal(labels, model.predict(X))
    np.testing.assert_allclose(probabilities, model.predict_proba(X), rtol=0, atol=1e-5)
    assert report.passed
    assert manifest.parity.max_abs_diff <= 1e-5
    assert manifest.parity.rows == len(X)
    assert manifest.parity.compared == "probabilities, label"
    assert manifest.task == "classification"
    assert manifest.class_labels == [0, 1, 2]
    assert all(type(label) is int for label in manifest.class_labels)
    assert [spec.name for spec in manifest.inputs] == ["input"]
    assert manifest.inputs[0].shape == [None, 6]
    assert [(spec.name, spec.dtype) for spec in manifest.outputs] == [
        ("label", "int64"),
        ("probabilities", "float32"),
    ]
    assert manifest.outputs[1].shape == [None, 3]


def test_an_impossible_tolerance_raises_a_parity_error(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, _ = data
    model = fitted(LogisticRegression(max_iter=1000), data)

    _, report = export_in_memory(model, X, tolerance=1e-12)

    assert not report.passed
    with pytest.raises(ParityError, match="disagree") as caught:
        report.raise_if_failed()

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
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, _ = data
    bundle, report = export_in_memory(fitted(LogisticRegression(max_iter=1000), data), X)

    manifest = build_manifest(bundle, report, name="copy", version=3, source={"from": "test"})

    assert (manifest.name, manifest.version) == ("copy", 3)
    assert manifest.sha256 == hashlib.sha256(bundle.onnx_bytes).hexdigest()
    assert manifest.size_bytes == len(bundle.onnx_bytes)
    assert [(f.name, f.dtype, f.nullable) for f in manifest.features] == [
        (f"f{i}", "float32", False) for i in range(6)
    ]
    assert (manifest.label_output, manifest.probability_output) == ("label", "probabilities")
    assert manifest.parity == report.parity()
    assert manifest.source == {"from": "test"}
    assert manifest.class_names is None
