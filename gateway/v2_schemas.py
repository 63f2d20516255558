"""Open Inference Protocol (V2) bodies: requests, their decoding into a model input, responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from onnxq.errors import TooManyRows
from onnxq.models.inputs import Float32Problem, check_row_limit, float32_problem
from onnxq.models.manifest import DType, Manifest, TensorSpec
from onnxq.models.session import PredictionResult

# Manifest dtypes as the protocol's tensor data types.
DATATYPES: dict[DType, str] = {
    "float32": "FP32",
    "float64": "FP64",
    "int64": "INT64",
    "bool": "BOOL",
    "string": "BYTES",
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)  # bool is a subclass of int: not a number here


def _is_int64(value: Any) -> bool:
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def _is_bool(value: Any) -> bool:
    return type(value) is bool


FLOAT32_MESSAGES = {
    Float32Problem.NOT_FINITE: "is NaN or infinite; values must be finite numbers",
    Float32Problem.OUT_OF_RANGE: "is outside the float32 range",
}

# Input datatypes accepted, each with the JSON element it needs; all are cast to float32.
ELEMENT_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "FP32": (_is_number, "a number"),
    "FP64": (_is_number, "a number"),
    "INT64": (_is_int64, "an integer in the INT64 range"),
    "BOOL": (_is_bool, "true or false"),
}

Parameters = dict[str, StrictStr | StrictInt | StrictFloat | StrictBool]
Dimension = Annotated[int, Field(strict=True, ge=0, le=2**64 - 1)]


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr
    shape: list[Dimension]
    datatype: StrictStr
    parameters: Parameters | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StrictStr | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class TensorError(ValueError):
    """The request is well formed but does not fit the model; its message is for the client."""


def describe(error: ValidationError) -> str:
    """One line naming every problem pydantic found, e.g. 'inputs.0.shape: Field required'."""
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
        for item in error.errors()
    ]
    return "invalid inference request: " + "; ".join(problems)


def _flatten(data: list[Any], shape: list[int]) -> list[Any]:
    """Return row-major elements; nested data must have exactly the declared shape."""
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []

    def walk(node: Any, depth: int, where: str) -> None:
        if depth == len(shape):
            if isinstance(node, list):
                raise TensorError(f"data{where} is nested deeper than shape {shape}")
            flat.append(node)
            return
        if not isinstance(node, list) or len(node) != shape[depth]:
            got = f"{len(node)} items" if isinstance(node, list) else "a single value"
            raise TensorError(f"data{where} has {got} but shape {shape} needs {shape[depth]} there")
        for index, child in enumerate(node):
            walk(child, depth + 1, f"{where}[{index}]")

    walk(data, 0, "")
    return flat


def decode_input(
    tensor: RequestInput, manifest: Manifest, max_rows: int, jobs_url: Callable[[], str]
) -> tuple[np.ndarray, list[list[float]]]:
    """Check one input tensor against `manifest`; return the float32 matrix and rows as sent."""
    width = len(manifest.features)
    if tensor.datatype not in ELEMENT_CHECKS:
        raise TensorError(
            f"input '{tensor.name}' has datatype '{tensor.datatype}'; "
            f"this model accepts {', '.join(ELEMENT_CHECKS)}"
        )
    shape = tensor.shape
    if len(shape) != 2 or shape[1] != width or shape[0] < 1:
        raise TensorError(
            f"input '{tensor.name}' has shape {shape}; expected [n, {width}] "
            f"with n >= 1 rows of {width} features"
        )
    rows = shape[0]
    try:
        check_row_limit(rows, max_rows, jobs_url)
    except TooManyRows as exc:  # a bad request like any other in this protocol
        raise TensorError(exc.message) from None
    flat = _flatten(tensor.data, shape)
    if len(flat) != rows * width:
        raise TensorError(
            f"input '{tensor.name}' has {len(flat)} elements; shape {shape} needs {rows * width}"
        )
    check, wanted = ELEMENT_CHECKS[tensor.datatype]
    for index, value in enumerate(flat):
        problem = None
        if not check(value):
            problem = f"is {value!r}; {tensor.datatype} needs {wanted}"
        elif (float32 := float32_problem(value)) is not None:
            problem = FLOAT32_MESSAGES[float32]
        if problem is not None:
            row, column = divmod(index, width)
            feature = manifest.features[column].name
            raise TensorError(
                f"input '{tensor.name}' element {index} (row {row}, feature '{feature}') {problem}"
            )
    as_sent = [float(value) for value in flat]
    matrix = np.asarray(as_sent, dtype=np.float32).reshape(rows, width)
    return matrix, [as_sent[start : start + width] for start in range(0, len(as_sent), width)]


def metadata_tensors(specs: list[TensorSpec]) -> list[dict[str, Any]]:
    """Manifest tensors as the protocol's metadata tensors: -1 for the dynamic batch axis."""
    return [
        {
            "name": spec.name,
            "datatype": DATATYPES[spec.dtype],
            "shape": [-1 if size is None else size for size in spec.shape],
        }
        for spec in specs
    ]


def response_outputs(
    manifest: Manifest, result: PredictionResult, rows: int
) -> dict[str, dict[str, Any]]:
    """Every output the model produces, as response tensors keyed by name."""
    dtypes = {spec.name: DATATYPES[spec.dtype] for spec in manifest.outputs}
    probabilities = result.probabilities
    classes = len(probabilities[0]) if probabilities else 0
    label, probability = manifest.label_output, manifest.probability_output
    return {
        label: {
            "name": label,
            "datatype": dtypes.get(label, "INT64"),
            "shape": [rows],
            "data": result.labels,
        },
        probability: {
            "name": probability,
            "datatype": dtypes.get(probability, "FP32"),
            "shape": [rows, classes],
            "data": [value for row in probabilities for value in row],
        },
    }


# ---- response bodies, for the OpenAPI document -----------------------------------------------


class V2ErrorResponse(BaseModel):
    error: str = Field(description="What went wrong, for a person to read.")


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLiveResponse(BaseModel):
    live: bool


class ServerReadyResponse(BaseModel):
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 marks a variable-size axis (the batch).")


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] = Field(description="Row-major, flat.")


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]
