"""The demo model: a random forest on scikit-learn's breast-cancer data set (30 float features)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from onnxq.models.manifest import DEFAULT_TOLERANCE, Manifest
from onnxq.models.repository import ModelRepository
from onnxq.registry.export import build_manifest
from onnxq.registry.export_dir import (
    INPUT_NAME,
    LABEL_OUTPUT,
    PROBABILITY_OUTPUT,
    SampleInfo,
)
from onnxq.registry.export_sklearn import export_estimator
from onnxq.registry.parity import validate_export
from onnxq.registry.sklearn_onnx import sklearn_to_onnx

DEMO_MODEL_NAME = "breast-cancer"


def build_demo_model(
    repository: ModelRepository,
    name: str = DEMO_MODEL_NAME,
    tolerance: float = DEFAULT_TOLERANCE,
    n_estimators: int = 100,
) -> Manifest:
    """Train, export, check parity on the whole data set, and add it as the next version."""
    import sklearn
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    data = load_breast_cancer()
    X = data.data.astype(np.float32)
    estimator = RandomForestClassifier(n_estimators=n_estimators, random_state=0, n_jobs=1)
    estimator.fit(X, data.target)
    rows = X.astype(np.float64)
    features = [str(feature) for feature in data.feature_names]
    bundle = export_estimator(
        estimator,
        rows,
        features,
        SampleInfo.of(Path("sklearn.datasets.load_breast_cancer"), rows),
        class_names=[str(target) for target in data.target_names],
        nullable=[],  # trained without missing values: a row with one is refused
    )
    report = validate_export(bundle.onnx_bytes, bundle.record, bundle.expected, tolerance=tolerance)
    report.raise_if_failed()

    versions = repository.versions(name)
    manifest = build_manifest(
        bundle,
        report,
        name=name,
        version=(versions[-1] + 1) if versions else 1,
        source={
            "framework": "scikit-learn",
            "framework_version": sklearn.__version__,
            "estimator": f"RandomForestClassifier(n_estimators={n_estimators}, random_state=0)",
            "training_data": "sklearn.datasets.load_breast_cancer",
            "training_rows": len(X),
        },
    )
    repository.add_version(manifest, bundle.onnx_bytes)
    write_demo_profile(repository, manifest, X, out_of_fold_outputs(estimator, X, data.target))
    return manifest


def out_of_fold_outputs(
    estimator: Any, X: np.ndarray, y: np.ndarray, folds: int = 5
) -> dict[str, Any]:
    """Every training row's outputs from the ONNX export of a copy of `estimator` fitted
    without that row's fold: what the model outputs on rows it has not seen, as ONNX Runtime
    computes them (its float32 sums give the log's 0.99999934 where scikit-learn says 1.0)."""
    import onnxruntime as ort
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the service runs
    labels: list[Any] = [None] * len(X)
    probabilities = np.zeros((len(X), len(np.unique(y))), dtype=np.float32)
    for train, held_out in StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y):
        fold_model = clone(estimator).fit(X[train], y[train])
        onnx_bytes = sklearn_to_onnx(fold_model, X.shape[1])
        session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        fold_labels, fold_probabilities = session.run(
            [LABEL_OUTPUT, PROBABILITY_OUTPUT], {INPUT_NAME: X[held_out]}
        )
        probabilities[held_out] = fold_probabilities
        for row, label in zip(held_out, fold_labels.tolist(), strict=True):
            labels[row] = label
    return {"probabilities": probabilities, "label": labels}


def write_demo_profile(
    repository: ModelRepository, manifest: Manifest, X: np.ndarray, outputs: dict[str, Any]
) -> None:
    """The drift reference: the training features, and out-of-fold outputs (never the model's
    outputs on its own training rows: a random forest is nearly certain there, and fresh rows
    from the same population would show its probability "drifted" for good)."""
    from drift import build_profile

    profile = build_profile(
        X,
        outputs=outputs,
        outputs_source="out-of-fold",
        feature_names=manifest.feature_names,
        model=manifest.name,
        version=manifest.version,
    )
    profile.save(repository.paths(manifest.name, manifest.version).profile)
