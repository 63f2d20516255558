"""The manifest.json that sits beside every model.onnx: the contract of a model version.

A version's files: <model_dir>/<name>/<version>/{model.onnx, manifest.json, profile.json}, all
named by `VersionPaths`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


DType = Literal["float32", "float64", "float16", "int64", "int32", "uint8", "bool", "string"]
# What a model answers: classes (labels, maybe probabilities), numbers (one per target), or, for
# a model whose input is not a table of features, its output tensors as they are.
Task = Literal["classification", "regression", "tensor"]


class FeatureSpec(BaseModel):
    """One named column of the model's input, in input order."""

    name: str
    dtype: DType = "float32"
    nullable: bool = Field(
        default=False,
        description="the model takes a missing value here (NaN): null is accepted and logged "
        "as missing; otherwise a missing value is refused (422)",
    )


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
    task: Task = "classification"
    features: list[FeatureSpec] = Field(
        default_factory=list, description="the input's columns; empty for a tensor model"
    )
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    # classification: the label output, and the probability output unless the model has none
    label_output: str | None = None
    probability_output: str | None = None
    class_labels: list[int | str] = Field(default_factory=list)
    class_names: list[str] | None = None
    # regression: the output holding one column per target, and the targets' names
    prediction_output: str | None = None
    targets: list[str] = Field(default_factory=list)
    parity: Parity
    source: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fits_task(self) -> Manifest:
        names = {output.name for output in self.outputs}
        if self.task == "classification":
            wanted = {"label_output": self.label_output, "class_labels": self.class_labels}
        elif self.task == "regression":
            wanted = {"prediction_output": self.prediction_output, "targets": self.targets}
        else:
            wanted = {}
        absent = [field for field, value in wanted.items() if not value]
        if absent:
            raise ValueError(f"a {self.task} manifest needs {', '.join(absent)}")
        for output in (self.label_output, self.probability_output, self.prediction_output):
            if output is not None and output not in names:
                raise ValueError(f"output '{output}' is not one of the model's outputs")
        if self.features and len(self.inputs) != 1:
            raise ValueError("a model with features takes exactly one input tensor")
        if not self.features:  # a tensor input: its rows are stored as fixed-size records
            for spec in self.inputs:
                if spec.dtype == "string" or not spec.shape or spec.shape[0] is not None:
                    raise ValueError(f"input '{spec.name}' needs a batch axis first and no strings")
                if any(size is None for size in spec.shape[1:]):
                    raise ValueError(f"input '{spec.name}' has a variable axis after the batch")
        return self

    @property
    def tabular(self) -> bool:
        """The model takes rows of named features (the /v1 row API); else tensors only."""
        return bool(self.features)

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def nullable(self) -> list[bool]:
        return [feature.nullable for feature in self.features]

    @property
    def input_name(self) -> str:
        return self.inputs[0].name

    @property
    def answer_outputs(self) -> list[str]:
        """The outputs a v1 answer, a job result and a log line are made of, in this order."""
        if self.task == "classification":
            named = [self.label_output, self.probability_output]
        elif self.task == "regression":
            named = [self.prediction_output]
        else:
            return [output.name for output in self.outputs]
        return [name for name in named if name is not None]

    def write(self, directory: Path) -> Path:
        path = VersionPaths(directory).manifest
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        text = VersionPaths(directory).manifest.read_text(encoding="utf-8")
        return cls.model_validate_json(text)
