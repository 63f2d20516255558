"""Request bodies: pydantic for the envelope, then every row checked against the manifest."""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import numpy as np
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from onnxq.errors import InvalidInput, TooManyRows
from onnxq.models.manifest import Manifest
from onnxq.models.tensors import tensor_rows

FLOAT32_MAX = float(np.finfo(np.float32).max)


class Float32Problem(StrEnum):
    """Why a number cannot be a float32 model input; each API words it its own way."""

    NOT_FINITE = "not_finite"  # NaN or ±Infinity
    OUT_OF_RANGE = "out_of_range"  # finite, but no float32 holds it


def float32_problem(value: int | float) -> Float32Problem | None:
    """The float32 check of one number (bool and int too), for /v1 and /v2 alike."""
    if isinstance(value, float) and not math.isfinite(value):
        return Float32Problem.NOT_FINITE
    if abs(value) > FLOAT32_MAX:  # exact for ints of any size
        return Float32Problem.OUT_OF_RANGE
    return None


def fits_float32(values: np.ndarray) -> bool:
    """`float32_problem` over a whole float64 array at once: no value has a problem."""
    return bool(np.isfinite(values).all() and np.abs(values).max(initial=0.0) <= FLOAT32_MAX)


def check_row_limit(rows: int, limit: int, jobs_url: str | Callable[[], str] | None = None) -> None:
    """Refuse more than `limit` rows (TooManyRows, 413), before any of them is read.

    With `jobs_url` the limit is a synchronous route's, and the message names the jobs route
    that takes more; without, it is a job's own limit. It may be a function, called only when
    the limit is passed (building a URL costs more than a whole prediction's validation).
    """
    if rows <= limit:
        return
    if callable(jobs_url):
        jobs_url = jobs_url()
    if jobs_url is not None:
        raise TooManyRows(
            f"{rows} rows is more than the synchronous limit of {limit}; "
            f"submit them as a job with POST {jobs_url}",
            [{"limit": limit, "jobs_url": jobs_url}],
        )
    raise TooManyRows(
        f"{rows} rows is more than one job may carry ({limit}); split the batch", [{"limit": limit}]
    )


_VALUE = {"type": ["number", "null"]}
# Rows are checked against the manifest below (so that every error names its
# row and feature); this schema tells clients and OpenAPI what a row looks like.
Instances = Annotated[
    list[Any],
    Field(
        min_length=1,
        description="Rows as arrays in manifest feature order, or as objects "
        "mapping every feature name to a number (null where the feature is nullable). For a "
        "tensor model, a row is its input's value (nested arrays of the input's row shape), "
        "or an object mapping every input name to its value.",
    ),
    WithJsonSchema(
        {
            "type": "array",
            "minItems": 1,
            "items": {
                "anyOf": [
                    {"type": "array", "items": {"anyOf": [_VALUE, {"type": "array"}]}},
                    {
                        "type": "object",
                        "additionalProperties": {"anyOf": [_VALUE, {"type": "array"}]},
                    },
                ]
            },
        }
    ),
]


class PredictRequest(BaseModel):
    """Body of a synchronous predict."""

    model_config = ConfigDict(extra="forbid")

    instances: Instances
    version: int | None = Field(default=None, ge=1, strict=True, description="Pin a model version.")


RequestT = TypeVar("RequestT", bound="PredictRequest")


class JobRequest(PredictRequest):
    """Body of a job submission: a predict body plus an optional completion callback."""

    callback_url: AnyHttpUrl | None = Field(
        default=None, description="onnxq POSTs the final job document here when the job ends."
    )


def parse_request(model: type[RequestT], body: Any) -> RequestT:
    """Validate the envelope (keys, types); rows are checked later against a manifest."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        details = [{"loc": list(error["loc"]), "message": error["msg"]} for error in exc.errors()]
        raise InvalidInput(f"{len(details)} problem(s) in the request body", details) from None


def rows_to_matrix(rows: list[Any], manifest: Manifest) -> np.ndarray:
    """Check every row against the manifest and return the model's input batch: a float32
    matrix for a tabular model (a missing value is NaN, where the feature is nullable), the
    records of `tensors.row_dtype` for a tensor model."""
    if not manifest.tabular:
        return tensor_rows(rows, manifest)
    matrix = _plain_matrix(rows, len(manifest.features))
    if matrix is not None:
        return matrix
    return _checked_matrix(rows, manifest)


def _plain_matrix(rows: list[Any], width: int) -> np.ndarray | None:
    """Fast path for the common case: arrays of plain finite numbers of the right width.

    Returns None whenever anything needs a per-value look (objects, bools, strings,
    NaN, wrong lengths); `_checked_matrix` then finds and names every problem.
    """
    if not all(type(row) is list and len(row) == width for row in rows):
        return None
    if not {type(value) for row in rows for value in row} <= {float, int}:
        return None  # bool is not int here: type() is exact
    try:
        values = np.array(rows, dtype=np.float64)
    except (OverflowError, ValueError):  # ints beyond float64
        return None
    if not fits_float32(values):
        return None
    return values.astype(np.float32).reshape(len(rows), width)


def _checked_matrix(rows: list[Any], manifest: Manifest) -> np.ndarray:
    names = manifest.feature_names
    nullable = dict(zip(names, manifest.nullable, strict=True))
    matrix = np.empty((len(rows), len(names)), dtype=np.float32)
    details: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        values = _row_values(index, row, names, nullable, details)
        if values is not None:
            matrix[index] = values
    if details:
        raise InvalidInput(f"{len(details)} problem(s) in the request body", details)
    return matrix


def _row_values(
    index: int,
    row: Any,
    names: list[str],
    nullable: dict[str, bool],
    details: list[dict[str, Any]],
) -> list[float] | None:
    def problem(message: str, feature: str | None = None, column: int | str | None = None) -> None:
        loc: list[Any] = ["instances", index] + ([column] if column is not None else [])
        detail: dict[str, Any] = {"loc": loc, "row": index, "message": message}
        if feature is not None:
            detail["feature"] = feature
        details.append(detail)

    before = len(details)
    if isinstance(row, list):
        if len(row) != len(names):
            problem(f"expected {len(names)} values, got {len(row)}")
            return None
        pairs = list(zip(names, row, range(len(names)), strict=True))
    elif isinstance(row, dict):
        for extra in sorted(set(row) - set(names)):
            problem("unknown feature", feature=str(extra), column=str(extra))
        for missing in (name for name in names if name not in row):
            problem("missing feature", feature=missing, column=missing)
        pairs = [(name, row.get(name), name) for name in names if name in row]
    else:
        problem("a row must be an array of numbers or an object of feature: number")
        return None
    values = []
    for name, value, column in pairs:
        if nullable[name] and (value is None or (type(value) is float and math.isnan(value))):
            values.append(math.nan)  # a missing value the model was built to take
            continue
        message = _number_problem(value)
        if message:
            problem(message, feature=name, column=column)
        values.append(value)
    return values if len(details) == before else None


FLOAT32_MESSAGES = {
    Float32Problem.NOT_FINITE: "expected a finite number, got NaN or Infinity",
    Float32Problem.OUT_OF_RANGE: "value is outside the float32 range",
}


def _number_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "null" if value is None else type(value).__name__
        return f"expected a number, got {kind}"
    problem = float32_problem(value)
    return None if problem is None else FLOAT32_MESSAGES[problem]


def parse_predict_request(
    body: Any,
    manifest: Manifest,
    model: type[RequestT] = PredictRequest,  # type: ignore[assignment]
) -> tuple[RequestT, np.ndarray]:
    """Validate a whole body for `manifest`: the envelope, then every row."""
    request = parse_request(model, body)
    return request, rows_to_matrix(request.instances, manifest)
