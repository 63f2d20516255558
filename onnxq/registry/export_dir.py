"""The directory `onnxq export` writes, which `onnxq validate` and `onnxq register` read.

    <out>/model.onnx     the exported model
    <out>/export.json    what it is: task, features or input tensors, outputs, classes or
                         targets, source, the sample checked on
    <out>/expected.npz   the sample inputs and the SOURCE model's outputs on them (on float32
                         input, and for tree models on the float64 rows as read), computed at
                         export time while the source model was in memory

Keeping the source model's outputs is what lets `validate` and `register` compare the ONNX model
with the original without reading the original again: a pickle is read once, by `export sklearn`.
The directory appears whole or not at all: it is written beside its place and renamed into it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from onnxq.errors import InvalidInput, InvalidModel
from onnxq.models.manifest import MODEL_FILE, Parity, Task

EXPORT_FILE = "export.json"
EXPECTED_FILE = "expected.npz"
# The tensor names `onnxq export` gives a tabular model's graph.
INPUT_NAME = "input"
LABEL_OUTPUT = "label"
PROBABILITY_OUTPUT = "probabilities"
# Fewest sample rows: an export traces two, as one would let it fix the batch axis to 1.
SAMPLE_MIN_ROWS = 2
SCORES_OUTPUT = "scores"  # a classifier without probabilities: its decision function
PREDICTION_OUTPUT = "predictions"


class SampleInfo(BaseModel):
    """The rows the ONNX model was compared on: where they came from and a digest of them."""

    file: str
    rows: int
    sha256: str = Field(description="of the float64 sample matrix in feature order")

    @classmethod
    def of(cls, path: Path, rows: np.ndarray) -> SampleInfo:
        return cls(file=path.name, rows=len(rows), sha256=matrix_digest(rows))


class ExportRecord(BaseModel):
    """export.json: everything register needs to describe the model in its manifest."""

    model_config = ConfigDict(extra="forbid")

    framework: Literal["scikit-learn", "lightgbm", "xgboost", "pytorch"]
    framework_version: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source: dict[str, Any] = Field(description="the source file(s) and their sha256")
    task: Task = "classification"
    features: list[str] = Field(default_factory=list, description="empty for a tensor model")
    nullable: list[str] = Field(
        default_factory=list, description="features where the model takes a missing value"
    )
    label_output: str | None = None
    probability_output: str | None = None
    class_labels: list[int | str] = Field(default_factory=list)
    class_names: list[str] | None = None
    prediction_output: str | None = None
    targets: list[str] = Field(default_factory=list)
    compared: list[str] = Field(description="the outputs parity compares with the source's")
    tree_model: bool = Field(description="a decision-tree model: float64/float32 flips are checked")
    sample: SampleInfo
    missing_probe_rows: int = Field(
        default=0,
        description="rows after the sample's, copies of its rows with nullable features made "
        "missing: parity covers what a missing value does",
    )
    parity: Parity | None = None

    @property
    def label_outputs(self) -> list[str]:
        """Outputs of categories (compared row by row), not of numbers."""
        return [self.label_output] if self.label_output else []

    def write(self, directory: Path) -> None:
        text = self.model_dump_json(indent=2) + "\n"
        (directory / EXPORT_FILE).write_text(text, encoding="utf-8")


_INPUT, _OUTPUT, _OUTPUT_F64 = "input:", "output:", "output_f64:"


@dataclass(frozen=True)
class ExpectedOutputs:
    """The sample and the source model's outputs on it, by tensor name (expected.npz).

    A tabular model's one input holds the float64 rows as read; the service sends float32, so
    `outputs` were computed on those rows cast to float32, and `outputs_f64` (tree models) on
    the rows as read.
    """

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    outputs_f64: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(next(iter(self.inputs.values())))

    def save(self, directory: Path) -> None:
        arrays = {
            prefix + name: _storable(array)
            for prefix, group in (
                (_INPUT, self.inputs),
                (_OUTPUT, self.outputs),
                (_OUTPUT_F64, self.outputs_f64),
            )
            for name, array in group.items()
        }
        np.savez(directory / EXPECTED_FILE, **arrays)

    @classmethod
    def load(cls, directory: Path) -> ExpectedOutputs:
        # allow_pickle=False: an .npz may hold object arrays, which numpy would unpickle.
        groups: dict[str, dict[str, np.ndarray]] = {_INPUT: {}, _OUTPUT: {}, _OUTPUT_F64: {}}
        with np.load(directory / EXPECTED_FILE, allow_pickle=False) as data:
            for key in data.files:
                prefix, _, name = key.partition(":")
                groups[prefix + ":"][name] = data[key]
        return cls(groups[_INPUT], groups[_OUTPUT], groups[_OUTPUT_F64])


def _storable(array: np.ndarray) -> np.ndarray:
    """String labels as a fixed-width unicode array: an object array would need pickle."""
    array = np.asarray(array)
    return array.astype(str) if array.dtype == object else array


def target_names(width: int, given: list[str] | None) -> list[str]:
    """A regressor's target names: the user's, else `prediction` or `target_0`, `target_1`..."""
    names = given or (["prediction"] if width == 1 else [f"target_{i}" for i in range(width)])
    if len(names) != width or len(set(names)) != width:
        raise InvalidInput(f"{len(names)} distinct target names are needed for {width} targets")
    return names


def matrix_digest(matrix: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(matrix, dtype=np.float64).tobytes()).hexdigest()


def read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path} cannot be read as CSV: {exc}") from exc
    if frame.empty:
        raise InvalidInput(f"{path} holds no rows")
    return frame


def sample_matrix(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """An export sample's values as float64: every column of it is a feature."""
    try:
        return frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{path} has non-numeric values: {exc}") from exc


def read_sample(
    path: Path, features: list[str] | None = None, nullable: list[str] | None = None
) -> tuple[dict[str, np.ndarray], list[str], SampleInfo]:
    """Rows of inputs: an .npz of input tensors by name, or a CSV of feature rows (all its
    columns, in order, when `features` is None; else a model's `features`: [] for a tensor
    model, which takes no CSV). Returns the arrays by input name, the feature names (none for
    tensors) and a record of the sample."""
    if path.suffix.lower() == ".npz":
        if features:
            raise InvalidInput(f"{path}: this model takes feature rows (a CSV), not tensors")
        try:
            # allow_pickle=False: an object array in an .npz would be unpickled.
            with np.load(path, allow_pickle=False) as data:
                inputs = {name: data[name] for name in data.files}
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{path} cannot be read as an .npz of input tensors: {exc}") from exc
        if not inputs:
            raise InvalidInput(f"{path} holds no arrays")
        sizes = {len(array) if array.ndim else 0 for array in inputs.values()}
        if len(sizes) != 1 or min(sizes) < SAMPLE_MIN_ROWS:
            raise InvalidInput(
                f"{path}: every input needs the same number of rows (axis 0), at least "
                f"{SAMPLE_MIN_ROWS}; found {sorted(sizes)}"
            )
        digest = hashlib.sha256(b"".join(a.tobytes() for a in inputs.values())).hexdigest()
        return inputs, [], SampleInfo(file=path.name, rows=sizes.pop(), sha256=digest)
    if features == []:
        raise InvalidInput(f"{path}: a tensor model's rows are tensors: pass an .npz")
    frame = read_csv(path)
    if features is None:
        features = [str(column) for column in frame.columns]
        rows = sample_matrix(frame, path)
    else:
        rows = feature_matrix(frame, features, str(path), nullable)
    if len(rows) < SAMPLE_MIN_ROWS:
        raise InvalidInput(f"{path} needs at least {SAMPLE_MIN_ROWS} rows")
    info = SampleInfo(file=path.name, rows=len(rows), sha256=matrix_digest(rows))
    return {INPUT_NAME: rows}, features, info


def feature_matrix(
    frame: pd.DataFrame, features: list[str], what: str, nullable: list[str] | None = None
) -> np.ndarray:
    """The feature columns, in the model's order, as float64; other columns are ignored. A
    missing value (empty, NaN) is allowed only in a `nullable` feature; infinity never."""
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise InvalidInput(f"{what} lacks the model's feature column(s) {missing}")
    try:
        matrix = frame[features].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} has non-numeric feature values: {exc}") from exc
    check_missing(matrix, features, nullable or [], what)
    return matrix


def check_missing(matrix: np.ndarray, features: list[str], nullable: list[str], what: str) -> None:
    """Refuse infinity anywhere, and a missing value (NaN) outside the nullable features."""
    allowed = np.isin(np.asarray(features), nullable) & np.isnan(matrix)
    bad = ~np.isfinite(matrix) & ~allowed
    if bad.any():
        rows = sorted({int(row) for row in np.argwhere(bad)[:, 0]})[:10]
        columns = sorted({features[int(col)] for col in np.argwhere(bad)[:, 1]})
        raise InvalidInput(
            f"{what} has missing or infinite values (rows {rows}, features {columns}); a "
            "missing value is allowed only in a nullable feature"
        )


def write_export_dir(
    directory: Path, onnx_bytes: bytes, record: ExportRecord, expected: ExpectedOutputs
) -> Path:
    """Write the three files into a new directory beside `directory`, then rename it into
    place: a failure leaves nothing behind, and an earlier export there is replaced whole."""
    directory = directory.resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    umask = os.umask(0)
    os.umask(umask)
    building.chmod(0o777 & ~umask)  # mkdtemp's 0700, as a directory made by mkdir would be
    try:
        (building / MODEL_FILE).write_bytes(onnx_bytes)
        expected.save(building)
        record.write(building)
        if directory.exists():
            if not (directory / EXPORT_FILE).is_file() and any(directory.iterdir()):
                raise InvalidInput(
                    f"{directory} exists and is not an export directory: choose another --out"
                )
            shutil.rmtree(directory)
        building.rename(directory)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return directory / MODEL_FILE


def read_export_dir(directory: Path) -> tuple[ExportRecord, ExpectedOutputs]:
    """The record and expected outputs `onnxq export` left beside a model.onnx."""
    path = directory / EXPORT_FILE
    if not path.is_file() or not (directory / EXPECTED_FILE).is_file():
        raise InvalidModel(
            f"{directory} has no {EXPORT_FILE} and {EXPECTED_FILE}: only a model exported with "
            "`onnxq export` can be validated and registered (its parity must be checked)"
        )
    try:
        record = ExportRecord.model_validate_json(path.read_text(encoding="utf-8"))
        expected = ExpectedOutputs.load(directory)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        raise InvalidModel(f"{directory} holds an unreadable export record: {exc}") from exc
    return record, expected
