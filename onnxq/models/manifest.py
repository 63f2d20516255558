"""The manifest.json that sits beside every model.onnx: the contract of a model version.

A version's files: <model_dir>/<name>/<version>/{model.onnx, manifest.json, profile.json}, all
named by `VersionPaths`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
PROFILE_FILE = "profile.json"  # the drift reference profile (drift/profile.py)
# Largest |ONNX - source model| a parity check accepts unless told otherwise.
DEFAULT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class VersionPaths:
    """Where the files of one model version are: the one place that knows the layout."""

    directory: Path

    @classmethod
    def of(cls, model_dir: Path, name: str, version: int) -> VersionPaths:
        return cls(model_dir / name / str(version))

    @property
    def model(self) -> Path:
        return self.directory / MODEL_FILE

    @property
    def manifest(self) -> Path:
        return self.directory / MANIFEST_FILE

    @property
    def profile(self) -> Path:
        return self.directory / PROFILE_FILE


DType = Literal["float32", "float64", "int64", "bool", "string"]


class FeatureSpec(BaseModel):
    """One named column of the model's input, in input order."""

    name: str
    dtype: DType = "float32"


class TensorSpec(BaseModel):
    """One ONNX graph input or output; `None` in a shape is a dynamic axis (the batch)."""

    name: str
    dtype: DType
    shape: list[int | None]


class Parity(BaseModel):
    """How closely the ONNX model reproduced the source model when it was built."""

    max_abs_diff: float
    tolerance: float
    rows: int
    compared: str = Field(description="which outputs were compared, e.g. 'probabilities'")
    per_output: dict[str, float] = Field(
        default_factory=dict,
        description="max |difference| per output; for labels, the share of rows that differ",
    )
    threshold_flip_rows: list[int] = Field(
        default_factory=list,
        description="sample rows whose source output changes from float64 to float32 input",
    )


class Manifest(BaseModel):
    """Everything a process needs to serve a model version without asking the model file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = Field(ge=1)
    format: Literal["onnx"] = "onnx"
    file: str = Field(default=MODEL_FILE, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int
    created_at: datetime
    task: Literal["classification"] = "classification"
    features: list[FeatureSpec]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    label_output: str
    probability_output: str
    class_labels: list[int | str]
    class_names: list[str] | None = None
    parity: Parity
    source: dict[str, Any] = Field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def input_name(self) -> str:
        return self.inputs[0].name

    def write(self, directory: Path) -> Path:
        path = VersionPaths(directory).manifest
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        text = VersionPaths(directory).manifest.read_text(encoding="utf-8")
        return cls.model_validate_json(text)
