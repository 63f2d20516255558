"""Every kind of scikit-learn-API model exports with its answer, checked against the source."""

from __future__ import annotations

import numpy as np
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.datasets import load_iris, make_regression
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from xgboost import XGBClassifier, XGBRegressor

from onnxq.errors import InvalidInput
from onnxq.models.manifest import Manifest
from onnxq.models.results import PredictionResult
from onnxq.registry.export import build_manifest
from onnxq.registry.parity import onnx_session
from tests.support.exports import export_in_memory

pytestmark = pytest.mark.filterwarnings(
    "ignore:Field onnx.AttributeProto.ints.*got a boolean:DeprecationWarning"
)


def regression_data(targets: int = 1) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_regression(300, 5, n_targets=targets, noise=5.0, random_state=0)
    return X.astype(np.float32), y * 50 + 10_000  # large values: float32 has ~7 digits


def iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data.astype(np.float32), data.target_names[data.target]  # string labels


def answer(manifest: Manifest, onnx_bytes: bytes, X: np.ndarray) -> PredictionResult:
    session = onnx_session(onnx_bytes)
    names = manifest.answer_outputs
    produced = session.run(names, {"input": X.astype(np.float32)})
    return PredictionResult.of(manifest, dict(zip(names, produced, strict=True)))


REGRESSORS = {
    "ridge": Ridge(),
    "pipeline": make_pipeline(StandardScaler(), Ridge()),
    "random-forest": RandomForestRegressor(n_estimators=20, random_state=0),
    "gradient-boosting": GradientBoostingRegressor(n_estimators=30, random_state=0),
    "lightgbm": LGBMRegressor(n_estimators=30, verbose=-1),
    "xgboost": XGBRegressor(n_estimators=30),
}


@pytest.mark.parametrize("name", list(REGRESSORS))
def test_a_regressor_answers_its_predictions_within_the_parity_tolerance(name: str) -> None:
    X, y = regression_data()
    estimator = REGRESSORS[name].fit(X, y)

    bundle, report = export_in_memory(estimator, X, nullable=[])
    manifest = build_manifest(bundle, report, name="r", version=1)
    result = answer(manifest, bundle.onnx_bytes, X)

    assert report.passed, report.lines()
    assert manifest.task == "regression"
    assert manifest.targets == ["prediction"]
    assert (manifest.label_output, manifest.class_labels) == (None, [])
    assert set(result.to_dict()) == {"predictions", "targets"}
    expected = estimator.predict(X)
    # Within 1e-5 of the predictions' own scale: float32 keeps ~7 significant digits.
    scale = max(1.0, np.abs(expected).max())
    assert np.abs(np.asarray(result.predictions) - expected).max() / scale <= 1e-5
    assert manifest.source == {} and bundle.record.framework == (
        name if name in ("lightgbm", "xgboost") else "scikit-learn"
    )


@pytest.mark.parametrize(
    "estimator",
    [Ridge(), RandomForestRegressor(n_estimators=10, random_state=0)],
    ids=["ridge", "random-forest"],
)
def test_a_multi_output_regressor_answers_one_list_per_row_named_by_its_targets(
    estimator,
) -> None:
    X, Y = regression_data(targets=2)
    estimator.fit(X, Y)

    bundle, report = export_in_memory(estimator, X, targets=["price", "rent"])
    manifest = build_manifest(bundle, report, name="r", version=1)
    result = answer(manifest, bundle.onnx_bytes, X[:3])

    assert report.passed, report.lines()
    assert manifest.targets == ["price", "rent"]
    # The graph of a multi-output forest declares [None, 1]; the manifest says what it gives.
    assert manifest.outputs[0].shape == [None, 2]
    assert result.to_dict()["targets"] == ["price", "rent"]
    np.testing.assert_allclose(result.predictions, estimator.predict(X[:3]), rtol=1e-5)


def test_target_names_must_match_the_number_of_targets() -> None:
    X, Y = regression_data(targets=2)
    with pytest.raises(InvalidInput, match="2 targets"):
        export_in_memory(Ridge().fit(X, Y), X, targets=["only-one"])


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(max_iter=1000),
        LGBMClassifier(n_estimators=20, verbose=-1),
    ],
    ids=["logistic-regression", "lightgbm"],
)
def test_a_classifier_with_string_labels_answers_them_with_its_class_names(estimator) -> None:
    X, y = iris()
    estimator.fit(X, y)

    bundle, report = export_in_memory(
        estimator, X, class_names=["Setosa", "Versicolour", "Virginica"]
    )
    manifest = build_manifest(bundle, report, name="iris", version=1)
    result = answer(manifest, bundle.onnx_bytes, X)

    assert report.passed, report.lines()
    assert manifest.class_labels == ["setosa", "versicolor", "virginica"]
    assert manifest.class_names == ["Setosa", "Versicolour", "Virginica"]
    assert result.labels == estimator.predict(X).tolist()
    np.testing.assert_allclose(result.probabilities, estimator.predict_proba(X), atol=1e-5)


def test_class_names_must_match_the_number_of_classes() -> None:
    X, y = iris()
    with pytest.raises(InvalidInput, match="2 class names for 3 classes"):
        export_in_memory(LogisticRegression(max_iter=500).fit(X, y), X, class_names=["a", "b"])


@pytest.mark.parametrize("binary", [False, True], ids=["three-classes", "two-classes"])
def test_a_classifier_without_probabilities_answers_labels_only(binary: bool) -> None:
    X, y = iris()
    if binary:
        y = (y == "setosa").astype(int)
    estimator = LinearSVC().fit(X, y)

    bundle, report = export_in_memory(estimator, X)
    manifest = build_manifest(bundle, report, name="svc", version=1)
    result = answer(manifest, bundle.onnx_bytes, X)

    assert report.passed, report.lines()
    assert manifest.probability_output is None
    assert [output.name for output in manifest.outputs] == ["label", "scores"]
    assert set(result.to_dict()) == {"labels", "classes"}
    assert result.labels == estimator.predict(X).tolist()
    assert "scores" in report.differences  # the decision function is compared too


def test_xgboost_classifies_with_the_parity_of_its_probabilities() -> None:
    X, y = iris()
    labels = np.unique(y, return_inverse=True)[1]  # XGBoost takes 0..n-1 only
    estimator = XGBClassifier(n_estimators=20).fit(X, labels)

    bundle, report = export_in_memory(estimator, X)

    assert report.passed, report.lines()
    assert report.differences["probabilities"] <= 1e-5
    assert bundle.record.framework == "xgboost"


@pytest.mark.parametrize(
    "estimator",
    [
        HistGradientBoostingRegressor(max_iter=30, random_state=0),
        LGBMRegressor(n_estimators=30, verbose=-1),
        XGBRegressor(n_estimators=30),
    ],
    ids=["hist-gradient-boosting", "lightgbm", "xgboost"],
)
def test_a_model_that_takes_missing_values_has_nullable_features_checked_on_them(
    estimator,
) -> None:
    X, y = regression_data()
    X = X.copy()
    X[::5, 1] = np.nan  # trained with missing values
    estimator.fit(X, y)

    bundle, report = export_in_memory(estimator, X)
    manifest = build_manifest(bundle, report, name="r", version=1)

    assert report.passed, report.lines()
    assert all(feature.nullable for feature in manifest.features)
    # Probe rows with each feature missing in turn were compared with the source model.
    assert bundle.record.missing_probe_rows > 0
    probes = bundle.expected.inputs["input"][bundle.record.sample.rows :]
    assert np.isnan(probes).any(axis=0).all()


def test_a_model_that_cannot_take_missing_values_has_none_nullable() -> None:
    X, y = regression_data()
    bundle, report = export_in_memory(Ridge().fit(X, y), X)

    assert report.passed
    assert bundle.record.nullable == [] and bundle.record.missing_probe_rows == 0


def test_nullable_features_can_be_named_and_a_missing_value_elsewhere_is_refused() -> None:
    X, y = regression_data()
    X = X.copy()
    X[0, 2] = np.nan
    estimator = HistGradientBoostingClassifier(max_iter=10).fit(X, y > np.median(y))

    bundle, _ = export_in_memory(estimator, X, nullable=["f2"])
    assert bundle.record.nullable == ["f2"]
    with pytest.raises(InvalidInput, match="missing value is allowed only in a nullable"):
        export_in_memory(estimator, X, nullable=["f0"])
