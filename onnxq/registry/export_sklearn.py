"""`onnxq export sklearn`: a user's pickled scikit-learn-API estimator or pipeline -> export dir.

Classifiers (integer or string labels, with or without predict_proba), regressors (one target or
several), and LightGBM's and XGBoost's scikit-learn estimators (the `boosting` extra).

THE ONE PLACE ONNXQ READS A PICKLE. Unpickling runs whatever code the file carries, so it happens
only here: in the `onnxq export` command a user runs on their own machine, on a file they made,
once, to convert it to ONNX. The gateway and the workers never read a pickle; they load ONNX only
(and check the bytes before they do, see onnxq/models/onnx_file.py).
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from onnxq.errors import InvalidInput
from onnxq.registry.export import ExportBundle, plain
from onnxq.registry.export_dir import (
    INPUT_NAME,
    LABEL_OUTPUT,
    PREDICTION_OUTPUT,
    PROBABILITY_OUTPUT,
    SAMPLE_MIN_ROWS,
    SCORES_OUTPUT,
    ExpectedOutputs,
    ExportRecord,
    SampleInfo,
    check_missing,
    read_csv,
    sample_matrix,
    target_names,
)
from onnxq.registry.parity import validate_export
from onnxq.registry.sklearn_onnx import final_step, framework_of, kind_of, sklearn_to_onnx

PICKLE_WARNING = (
    "onnxq is reading {path} with pickle, which runs any code the file contains. This is the "
    "only place onnxq ever reads a pickle: only export a file you made yourself or fully trust. "
    "The service loads only the ONNX model written by this command."
)

# Sample rows copied with each nullable feature made missing, to check what the ONNX copy does.
MISSING_PROBES_PER_FEATURE = 8
# Estimators whose outputs are piecewise constant in each feature, split at thresholds.
_TREE_MODULES = ("sklearn.tree", "sklearn.ensemble", "lightgbm", "xgboost")


class UntrustedPickleWarning(UserWarning):
    """Shown every time `export sklearn` unpickles a file."""


def load_user_pickle(path: Path) -> Any:
    """Unpickle the user's own estimator file, after warning that this runs its code."""
    warnings.warn(PICKLE_WARNING.format(path=path), UntrustedPickleWarning, stacklevel=2)
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)  # the user's own file, at export time only
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise InvalidInput(f"{path} cannot be read as a pickled estimator: {exc}") from exc


def is_tree_model(estimator: Any) -> bool:
    return type(final_step(estimator)).__module__.startswith(_TREE_MODULES)


def handles_missing(estimator: Any) -> bool:
    """The estimator's own word (scikit-learn's allow_nan tag) that it takes NaN input."""
    from sklearn.utils import get_tags

    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except (AttributeError, TypeError, ValueError):  # an estimator without sklearn tags
        return False


def export_estimator(
    estimator: Any,
    rows: np.ndarray,
    features: list[str],
    sample: SampleInfo,
    *,
    class_names: list[str] | None = None,
    targets: list[str] | None = None,
    nullable: list[str] | None = None,
    source: dict[str, Any] | None = None,
) -> ExportBundle:
    """Convert a fitted estimator taking `features`; record its outputs on the float64 `rows`.

    `nullable`: the features where a missing value may be sent. None asks the estimator: all of
    them when it says it takes NaN and its ONNX copy agrees with it on rows with missing values
    put in, none otherwise. The recorded rows then include those probe rows, so parity covers
    what a missing value does.
    """
    kind = kind_of(estimator)
    decided = nullable is not None
    nullable = nullable if decided else (list(features) if handles_missing(estimator) else [])
    unknown = sorted(set(nullable) - set(features))  # type: ignore[arg-type]
    if unknown:
        raise InvalidInput(f"--nullable names {unknown}, which are not features {features}")
    check_missing(rows, features, nullable, f"the sample ({sample.file})")  # type: ignore[arg-type]
    fields = _task_fields(estimator, kind, rows, class_names, targets)
    record = ExportRecord(
        framework=framework_of(estimator),
        framework_version=_version_of(framework_of(estimator)),
        source={**(source or {}), "estimator": type(estimator).__name__},
        features=features,
        compared=[],
        tree_model=is_tree_model(estimator),
        sample=sample,
        **fields,
    )
    onnx_bytes = sklearn_to_onnx(estimator, len(features))
    bundle = _bundle(estimator, kind, onnx_bytes, record, rows, nullable)  # type: ignore[arg-type]
    if not decided and nullable:
        report = validate_export(onnx_bytes, bundle.record, bundle.expected)
        if not report.passed:  # its ONNX copy treats a missing value otherwise: not nullable
            bundle = _bundle(estimator, kind, onnx_bytes, record, rows, [])
    return bundle


def _task_fields(
    estimator: Any,
    kind: str,
    rows: np.ndarray,
    class_names: list[str] | None,
    targets: list[str] | None,
) -> dict[str, Any]:
    if kind == "regressor":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            predicted = np.asarray(estimator.predict(rows[:SAMPLE_MIN_ROWS].astype(np.float32)))
        width = predicted.reshape(len(predicted), -1).shape[1]
        targets = target_names(width, targets)
        return {"task": "regression", "prediction_output": PREDICTION_OUTPUT, "targets": targets}
    classes = [plain(label) for label in estimator.classes_]
    if class_names is not None and len(class_names) != len(classes):
        raise InvalidInput(f"{len(class_names)} class names for {len(classes)} classes")
    if targets:
        raise InvalidInput("--targets names a regressor's outputs; this is a classifier")
    return {
        "task": "classification",
        "label_output": LABEL_OUTPUT,
        "probability_output": PROBABILITY_OUTPUT if kind == "classifier" else None,
        "class_labels": classes,
        "class_names": class_names,
    }


def _bundle(
    estimator: Any,
    kind: str,
    onnx_bytes: bytes,
    record: ExportRecord,
    rows: np.ndarray,
    nullable: list[str],
) -> ExportBundle:
    """The bundle with the source's outputs on `rows`, plus missing-value probe rows for the
    `nullable` features."""
    probes = missing_value_rows(rows, record.features, nullable)
    checked = np.concatenate([rows, probes]) if len(probes) else rows
    with warnings.catch_warnings():
        # A model fitted on a DataFrame warns when given a matrix; the columns are checked.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        outputs = _outputs(estimator, kind, checked.astype(np.float32))
        outputs_f64 = _outputs(estimator, kind, checked) if record.tree_model else {}
    record = record.model_copy(
        update={
            "nullable": [name for name in record.features if name in set(nullable)],
            "missing_probe_rows": len(probes),
            "compared": list(outputs),
        }
    )
    expected = ExpectedOutputs({INPUT_NAME: checked}, outputs, outputs_f64)
    return ExportBundle(onnx_bytes, record, expected)


def missing_value_rows(rows: np.ndarray, features: list[str], nullable: list[str]) -> np.ndarray:
    """Sample rows with missing values put in: each nullable feature alone in a few rows, and
    all of them at once in one row."""
    columns = [features.index(name) for name in nullable]
    if not columns:
        return np.empty((0, rows.shape[1]))
    base = rows[:MISSING_PROBES_PER_FEATURE]
    probes = []
    for column in columns:
        probe = base.copy()
        probe[:, column] = np.nan
        probes.append(probe)
    every = base[:1].copy()
    every[:, columns] = np.nan
    return np.concatenate([*probes, every])


def _outputs(estimator: Any, kind: str, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The estimator's outputs on `rows`, named as its ONNX graph names them."""
    if kind == "regressor":
        return {PREDICTION_OUTPUT: np.asarray(estimator.predict(rows), dtype=np.float64)}
    labels = np.asarray(estimator.predict(rows))
    if kind == "classifier":
        probabilities = np.asarray(estimator.predict_proba(rows), dtype=np.float64)
        return {PROBABILITY_OUTPUT: probabilities, LABEL_OUTPUT: labels}
    scores = np.asarray(estimator.decision_function(rows), dtype=np.float64)
    return {LABEL_OUTPUT: labels, SCORES_OUTPUT: scores}


def _version_of(framework: str) -> str:
    import importlib

    module = importlib.import_module("sklearn" if framework == "scikit-learn" else framework)
    return str(module.__version__)


def export_sklearn_file(
    estimator_file: Path,
    sample_file: Path,
    *,
    class_names: list[str] | None = None,
    targets: list[str] | None = None,
    nullable: list[str] | str | None = None,
) -> ExportBundle:
    """Convert the pickled estimator with the sample's columns as features (`nullable`: "all"
    of them, the named ones, or None to ask the estimator)."""
    estimator = load_user_pickle(estimator_file)
    kind_of(estimator)  # a clear error for anything but a fitted classifier or regressor
    frame = read_csv(sample_file)
    features = [str(column) for column in frame.columns]
    expected_width = getattr(estimator, "n_features_in_", len(features))
    if expected_width != len(features):
        raise InvalidInput(
            f"{sample_file} has {len(features)} columns; the estimator takes {expected_width}. "
            "The sample must hold exactly the feature columns, in training order"
        )
    names_in = getattr(estimator, "feature_names_in_", None)
    if names_in is not None and [str(n) for n in names_in] != features:
        raise InvalidInput(
            f"{sample_file}'s columns {features} are not the estimator's features "
            f"{[str(n) for n in names_in]} in that order"
        )
    rows = sample_matrix(frame, sample_file)
    return export_estimator(
        estimator,
        rows,
        features,
        SampleInfo.of(sample_file, rows),
        class_names=class_names,
        targets=targets,
        nullable=features if nullable == "all" else nullable,  # type: ignore[arg-type]
        source={
            "file": estimator_file.name,
            "sha256": hashlib.sha256(estimator_file.read_bytes()).hexdigest(),
        },
    )
