"""Open Inference Protocol (V2) bodies: requests, their decoding into a model input, responses."""

from __future__ import annotations

import math
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
from onnxq.models.results import PredictionResult, tensor_values
from onnxq.models.tensors import TensorProblem, row_shape, tensor_array, tensor_records

# Manifest dtypes as the protocol's tensor data types.
DATATYPES: dict[DType, str] = {
    "float32": "FP32",
    "float64": "FP64",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "uint8": "UINT8",
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


def decode_inputs(
    inputs: list[RequestInput], manifest: Manifest, max_rows: int, jobs_url: Callable[[], str]
) -> np.ndarray:
    """Check the input tensors against `manifest`; return the model's batch (OnnxModel.predict)."""
    if manifest.tabular:
        names = [tensor.name for tensor in inputs]
        if names != [manifest.input_name]:
            raise TensorError(
                f"model '{manifest.name}' takes exactly one input, '{manifest.input_name}'; "
                f"got {names}"
            )
        return _feature_matrix(inputs[0], manifest, max_rows, jobs_url)
    return _tensor_records(inputs, manifest, max_rows, jobs_url)


def _check_rows(rows: int, max_rows: int, jobs_url: Callable[[], str]) -> None:
    try:
        check_row_limit(rows, max_rows, jobs_url)
    except TooManyRows as exc:  # a bad request like any other in this protocol
        raise TensorError(exc.message) from None


def _feature_matrix(
    tensor: RequestInput, manifest: Manifest, max_rows: int, jobs_url: Callable[[], str]
) -> np.ndarray:
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
    _check_rows(rows, max_rows, jobs_url)
    flat = _flatten(tensor.data, shape)
    if len(flat) != rows * width:
        raise TensorError(
            f"input '{tensor.name}' has {len(flat)} elements; shape {shape} needs {rows * width}"
        )
    check, wanted = ELEMENT_CHECKS[tensor.datatype]
    nullable = manifest.nullable
    values = []
    for index, value in enumerate(flat):
        column = index % width
        if nullable[column] and (value is None or (type(value) is float and value != value)):
            values.append(math.nan)  # a missing value the model was built to take
            continue
        problem = None
        if not check(value):
            problem = f"is {value!r}; {tensor.datatype} needs {wanted}"
        elif (float32 := float32_problem(value)) is not None:
            problem = FLOAT32_MESSAGES[float32]
        if problem is not None:
            feature = manifest.features[column].name
            raise TensorError(
                f"input '{tensor.name}' element {index} (row {index // width}, feature "
                f"'{feature}') {problem}"
            )
        values.append(float(value))
    return np.asarray(values, dtype=np.float32).reshape(rows, width)


def _tensor_records(
    inputs: list[RequestInput], manifest: Manifest, max_rows: int, jobs_url: Callable[[], str]
) -> np.ndarray:
    specs = {spec.name: spec for spec in manifest.inputs}
    names = [tensor.name for tensor in inputs]
    if sorted(names) != sorted(specs):
        raise TensorError(f"model '{manifest.name}' takes the inputs {list(specs)}; got {names}")
    rows = inputs[0].shape[0] if inputs[0].shape else 0
    arrays = {}
    for tensor in inputs:
        spec = specs[tensor.name]
        shape = (rows, *row_shape(spec))
        if tuple(tensor.shape) != shape or rows < 1:
            raise TensorError(
                f"input '{tensor.name}' has shape {tensor.shape}; expected {list(shape)} "
                "(every input with the same number of rows, n >= 1)"
            )
        if tensor.datatype != DATATYPES[spec.dtype]:
            raise TensorError(
                f"input '{tensor.name}' has datatype '{tensor.datatype}'; the model takes "
                f"{DATATYPES[spec.dtype]}"
            )
        _check_rows(rows, max_rows, jobs_url)
        flat = _flatten(tensor.data, list(shape))
        try:
            arrays[tensor.name] = tensor_array(flat, spec, (math.prod(shape),)).reshape(shape)
        except TensorProblem as exc:
            raise TensorError(f"input '{tensor.name}' {exc}") from None
    return tensor_records(manifest, arrays)


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


def response_outputs(manifest: Manifest, result: PredictionResult) -> dict[str, dict[str, Any]]:
    """The outputs the model produced, as response tensors keyed by name."""
    dtypes = {spec.name: DATATYPES[spec.dtype] for spec in manifest.outputs}
    return {
        name: {
            "name": name,
            "datatype": dtypes[name],
            "shape": list(array.shape),
            "data": tensor_values(array.reshape(-1)),
        }
        for name, array in result.tensors.items()
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
