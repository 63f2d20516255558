"""The directory `onnxq export` writes, which `onnxq validate` and `onnxq register` read.

    <out>/model.onnx     the exported model
    <out>/export.json    what it is: features, outputs, classes, source, the sample checked on
    <out>/expected.npz   the sample rows and the SOURCE model's outputs on them (float32 and float64
                         input), computed at export time while the source model was in memory

Keeping the source model's outputs is what lets `validate` and `register` compare the ONNX model
with the original without reading the original again: a pickle is read once, by `export sklearn`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from onnxq.errors import InvalidInput, InvalidModel
from onnxq.models.manifest import MODEL_FILE, Parity

EXPORT_FILE = "export.json"
EXPECTED_FILE = "expected.npz"
# The tensor names every `onnxq export` gives the graph.
INPUT_NAME = "input"
LABEL_OUTPUT = "label"
PROBABILITY_OUTPUT = "probabilities"


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

    framework: Literal["scikit-learn", "pytorch"]
    framework_version: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source: dict[str, Any] = Field(description="the source file(s) and their sha256")
    features: list[str]
    label_output: str = LABEL_OUTPUT
    probability_output: str = PROBABILITY_OUTPUT
    class_labels: list[int | str]
    class_names: list[str] | None = None
    tree_model: bool = Field(description="a decision-tree model: float64/float32 flips are checked")
    sample: SampleInfo
    parity: Parity | None = None

    def write(self, directory: Path) -> None:
        text = self.model_dump_json(indent=2) + "\n"
        (directory / EXPORT_FILE).write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class ExpectedOutputs:
    """The source model's outputs on the sample, as arrays (stored in expected.npz)."""

    rows: np.ndarray  # float64, as read from the sample file
    probabilities: np.ndarray  # source model on float32 rows (what the service will receive)
    labels: np.ndarray
    probabilities_f64: np.ndarray | None = None  # source model on the float64 rows
    labels_f64: np.ndarray | None = None

    def save(self, directory: Path) -> None:
        arrays = {f.name: getattr(self, f.name) for f in fields(self)}
        arrays = {key: value for key, value in arrays.items() if value is not None}
        np.savez(directory / EXPECTED_FILE, **arrays)

    @classmethod
    def load(cls, directory: Path) -> ExpectedOutputs:
        # allow_pickle=False: an .npz may hold object arrays, which numpy would unpickle.
        with np.load(directory / EXPECTED_FILE, allow_pickle=False) as data:
            return cls(**{key: data[key] for key in data.files})


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


def feature_matrix(frame: pd.DataFrame, features: list[str], what: str) -> np.ndarray:
    """The feature columns, in the model's order, as float64; other columns are ignored."""
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise InvalidInput(f"{what} lacks the model's feature column(s) {missing}")
    try:
        matrix = frame[features].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} has non-numeric feature values: {exc}") from exc
    if not np.isfinite(matrix).all():
        bad = sorted({int(row) for row in np.argwhere(~np.isfinite(matrix))[:, 0]})[:10]
        raise InvalidInput(f"{what} has missing or infinite values (rows {bad})")
    return matrix


def write_export_dir(
    directory: Path, onnx_bytes: bytes, record: ExportRecord, expected: ExpectedOutputs
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_FILE).write_bytes(onnx_bytes)
    expected.save(directory)
    record.write(directory)
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
