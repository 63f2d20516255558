"""Request bodies, validated with pydantic and then checked against a model's manifest."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from onnxq.errors import InvalidInput
from onnxq.manifest import Manifest

# strict: no silent "1.5" -> 1.5 or true -> 1.0; finite: NaN and +-Inf are refused.
FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]
FLOAT32_MAX = float(np.finfo(np.float32).max)


class PredictRequest(BaseModel):
    """Body of a synchronous predict or a job submission."""

    model_config = ConfigDict(extra="forbid")

    instances: list[list[FiniteNumber]] = Field(min_length=1)


def _feature_at(manifest: Manifest, index: Any) -> str | None:
    if isinstance(index, int) and 0 <= index < len(manifest.features):
        return manifest.features[index].name
    return None


def parse_predict_request(body: Any, manifest: Manifest) -> tuple[PredictRequest, np.ndarray]:
    """Validate a JSON body for `manifest`; raise InvalidInput listing every problem found."""
    try:
        request = PredictRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(
            f"{exc.error_count()} problem(s) in the request body",
            [_detail_from_pydantic(error, manifest) for error in exc.errors()],
        ) from None
    return request, rows_to_matrix(request.instances, manifest)


def rows_to_matrix(rows: list[list[float]], manifest: Manifest) -> np.ndarray:
    """Check row lengths and float32 range, and return the model's input matrix."""
    expected = len(manifest.features)
    details: list[dict[str, Any]] = []
    for row_index, row in enumerate(rows):
        if len(row) != expected:
            details.append(
                {
                    "loc": ["instances", row_index],
                    "row": row_index,
                    "message": f"expected {expected} values, got {len(row)}",
                }
            )
            continue
        for column, value in enumerate(row):
            if abs(value) > FLOAT32_MAX:
                details.append(
                    {
                        "loc": ["instances", row_index, column],
                        "row": row_index,
                        "feature": manifest.features[column].name,
                        "message": "value is outside the float32 range",
                    }
                )
    if details:
        raise InvalidInput(f"{len(details)} problem(s) in the request body", details)
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), expected)


def _detail_from_pydantic(error: Any, manifest: Manifest) -> dict[str, Any]:
    loc = list(error["loc"])
    detail: dict[str, Any] = {"loc": loc, "message": error["msg"]}
    if len(loc) >= 2 and loc[0] == "instances" and isinstance(loc[1], int):
        detail["row"] = loc[1]
        feature = _feature_at(manifest, loc[2]) if len(loc) >= 3 else None
        if feature is not None:
            detail["feature"] = feature
    return detail
