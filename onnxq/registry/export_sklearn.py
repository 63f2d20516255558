"""`onnxq export sklearn`: a user's pickled scikit-learn classifier or pipeline -> export dir.

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
from onnxq.registry.export import plain, sklearn_classifier_to_onnx
from onnxq.registry.export_dir import (
    ExpectedOutputs,
    ExportRecord,
    SampleInfo,
    read_csv,
    sample_matrix,
    write_export_dir,
)

PICKLE_WARNING = (
    "onnxq is reading {path} with pickle, which runs any code the file contains. This is the "
    "only place onnxq ever reads a pickle: only export a file you made yourself or fully trust. "
    "The service loads only the ONNX model written by this command."
)

# Estimators whose outputs are piecewise constant in each feature, split at thresholds.
_TREE_MODULES = ("sklearn.tree", "sklearn.ensemble")


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
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return type(final).__module__.startswith(_TREE_MODULES)


def export_sklearn_file(estimator_file: Path, sample_file: Path, out_dir: Path) -> ExportRecord:
    """Convert the pickled classifier with the sample's columns as features; write `out_dir`."""
    import sklearn

    estimator = load_user_pickle(estimator_file)
    if not (hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_")):
        raise InvalidInput(
            f"{estimator_file} holds a {type(estimator).__name__}, not a fitted classifier "
            "(predict_proba and classes_ are needed)"
        )
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

    rows32 = rows.astype(np.float32)
    tree = is_tree_model(estimator)
    with warnings.catch_warnings():
        # A model fitted on a DataFrame warns when given a matrix; the columns are checked above.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        expected = ExpectedOutputs(
            rows=rows,
            probabilities=np.asarray(estimator.predict_proba(rows32), dtype=np.float64),
            labels=np.asarray(estimator.predict(rows32)),
            probabilities_f64=np.asarray(estimator.predict_proba(rows), dtype=np.float64)
            if tree
            else None,
            labels_f64=np.asarray(estimator.predict(rows)) if tree else None,
        )
    onnx_bytes = sklearn_classifier_to_onnx(estimator, len(features))
    record = ExportRecord(
        framework="scikit-learn",
        framework_version=sklearn.__version__,
        source={
            "file": estimator_file.name,
            "sha256": hashlib.sha256(estimator_file.read_bytes()).hexdigest(),
            "estimator": type(estimator).__name__,
        },
        features=features,
        class_labels=[plain(label) for label in estimator.classes_],
        tree_model=tree,
        sample=SampleInfo.of(sample_file, rows),
    )
    write_export_dir(out_dir, onnx_bytes, record, expected)
    return record
