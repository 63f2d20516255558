"""Response bodies as pydantic models: the OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from onnxq.models.manifest import FeatureSpec, Parity, TensorSpec


class ErrorDetail(BaseModel):
    loc: list[str | int] | None = None
    row: int | None = None
    feature: str | None = None
    message: str | None = None
    limit: int | None = None
    jobs_url: str | None = None
    job_id: str | None = None
    status: str | None = None


class ErrorBody(BaseModel):
    type: str = Field(description="Stable machine-readable error type, e.g. invalid_input.")
    message: str
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyChecks(BaseModel):
    models: bool
    redis: bool


class ReadyResponse(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: ReadyChecks


class PredictResponse(BaseModel):
    """A classifier answers labels, probabilities (unless it has none) and classes; a regressor
    predictions and targets; a tensor model its outputs by name."""

    model: str
    version: int
    request_id: str
    labels: list[int | str] | None = Field(default=None, description="A classifier's labels.")
    probabilities: list[list[float]] | None = Field(
        default=None, description="Columns in the order of `classes`."
    )
    classes: list[int | str] | None = None
    predictions: list[float | list[float]] | None = Field(
        default=None,
        description="A regressor's: a number per row, or a list per row (one per target).",
    )
    targets: list[str] | None = None
    outputs: dict[str, list[Any]] | None = Field(
        default=None, description="A tensor model's output tensors, rows first, by name."
    )


class JobAccepted(BaseModel):
    job_id: str
    status: Literal["queued"]
    model: str
    version: int


class ModelSummary(BaseModel):
    name: str
    versions: list[int]
    default_version: int


class ModelList(BaseModel):
    models: list[ModelSummary]


class ModelDescription(BaseModel):
    name: str
    versions: list[int]
    default_version: int
    version: int
    task: str
    features: list[FeatureSpec]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    classes: list[int | str] = Field(description="A classifier's class labels; empty otherwise.")
    class_names: list[str] | None
    targets: list[str] = Field(description="A regressor's target names; empty otherwise.")
    created_at: str
    sha256: str
    parity: Parity


def describe_error_statuses(*codes: int) -> dict[int, Any]:
    return dict.fromkeys(codes, ErrorResponse)
