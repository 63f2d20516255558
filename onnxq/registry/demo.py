"""The demo model: a random forest on scikit-learn's breast-cancer data set (30 float features)."""

from __future__ import annotations

import numpy as np

from onnxq.models.manifest import Manifest
from onnxq.models.repository import ModelRepository
from onnxq.registry.export import DEFAULT_TOLERANCE, build_manifest, export_sklearn_classifier

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
    exported = export_sklearn_classifier(estimator, X, tolerance=tolerance)

    versions = repository.versions(name)
    manifest = build_manifest(
        exported,
        name=name,
        version=(versions[-1] + 1) if versions else 1,
        feature_names=[str(feature) for feature in data.feature_names],
        class_names=[str(target) for target in data.target_names],
        source={
            "framework": "scikit-learn",
            "framework_version": sklearn.__version__,
            "estimator": f"RandomForestClassifier(n_estimators={n_estimators}, random_state=0)",
            "training_data": "sklearn.datasets.load_breast_cancer",
            "training_rows": len(X),
        },
    )
    repository.add_version(manifest, exported.onnx_bytes)
    write_demo_profile(repository, manifest, X)
    return manifest


def write_demo_profile(repository: ModelRepository, manifest: Manifest, X: np.ndarray) -> None:
    """The drift reference: the training features, and the ONNX model's outputs on them (what
    the prediction log records: scikit-learn's 1.0 is ONNX Runtime's 0.99999934)."""
    from drift import build_profile

    result = repository.get(manifest.name, manifest.version).predict(X)
    profile = build_profile(
        X,
        outputs={"probabilities": result.probabilities, "label": result.labels},
        feature_names=manifest.feature_names,
        model=manifest.name,
        version=manifest.version,
    )
    profile.save(repository.paths(manifest.name, manifest.version).profile)
