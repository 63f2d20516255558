"""The V2 infer body over HTTP: JSON, or JSON plus binary tensor data (Triton's extension).

With `Inference-Header-Content-Length: N`, the body's first N bytes are the JSON inference header
and the rest is the inputs' raw data, one after another in input order, each input saying how many
bytes are its own (`parameters.binary_data_size`). An output is answered the same way when the
request asks (`binary_data: true` on that output, or `binary_data_output: true` on the request):
the response is then the JSON header (whose outputs carry `binary_data_size` instead of `data`)
followed by their bytes, with the header's length in `Inference-Header-Content-Length`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from gateway.v2_schemas import InferenceRequest, RequestInput, describe
from gateway.v2_tensors import DATATYPES, Tensor, TensorError, json_values, raw_bytes, raw_tensor
from onnxq.models.inputs import Float32Problem, float32_problem
from onnxq.models.manifest import Manifest
from onnxq.models.results import PredictionResult, tensor_values

HEADER_LENGTH = "Inference-Header-Content-Length"
_JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
BINARY_SIZE = "binary_data_size"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)  # bool is a subclass of int: not a number here


def _is_integer(value: Any) -> bool:
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def _is_bool(value: Any) -> bool:
    return type(value) is bool


FLOAT32_MESSAGES = {
    Float32Problem.NOT_FINITE: "is NaN or infinite; values must be finite numbers",
    Float32Problem.OUT_OF_RANGE: "is outside the float32 range",
}
# JSON elements each datatype needs in a tabular model's input (all become float32).
ELEMENT_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    **dict.fromkeys(("FP16", "FP32", "FP64"), (_is_number, "a number")),
    **dict.fromkeys(
        ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"),
        (_is_integer, "an integer in the INT64 range"),
    ),
    "BOOL": (_is_bool, "true or false"),
}


class InferBodyError(ValueError):
    """The body is not an inference request (400), said in a sentence."""


def parse_body(body: bytes, header_length: str | None) -> tuple[InferenceRequest, memoryview]:
    """The inference header and the binary data after it (empty without the extension)."""
    view = memoryview(body)
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise InferBodyError(f"{HEADER_LENGTH} is not a number: {header_length!r}") from None
        if not 0 < length <= len(body):
            raise InferBodyError(f"{HEADER_LENGTH} is {length}, but the body has {len(body)} bytes")
        header, binary = view[:length], view[length:]
    else:
        header, binary = view, view[len(body) :]
    try:
        document = json.loads(bytes(header))
    except RecursionError:
        raise InferBodyError("the request body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise InferBodyError("the inference header is not valid JSON") from None
    try:
        return InferenceRequest.model_validate(document), binary
    except ValidationError as exc:
        raise InferBodyError(describe(exc)) from None


def request_tensors(
    request: InferenceRequest, binary: memoryview, manifest: Manifest
) -> list[Tensor]:
    """Every input as a Tensor, from its JSON data or its slice of the binary data."""
    tensors, offset = [], 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get(BINARY_SIZE)
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise TensorError(
                    f"input '{tensor.name}' says {BINARY_SIZE} {size!r}, but "
                    f"{len(binary) - offset} bytes of binary data are left"
                )
            if tensor.data is not None:
                raise TensorError(f"input '{tensor.name}' has both data and {BINARY_SIZE}")
            raw = binary[offset : offset + size]
            tensors.append(raw_tensor(tensor.name, tensor.datatype, tensor.shape, raw))
            offset += size
        elif tensor.data is None:
            raise TensorError(f"input '{tensor.name}' has neither data nor {BINARY_SIZE}")
        else:
            tensors.append(_json_tensor(tensor, manifest))
    if offset != len(binary):
        raise TensorError(
            f"the body has {len(binary)} bytes of binary data; the inputs' {BINARY_SIZE} "
            f"add up to {offset}"
        )
    return tensors


def _json_tensor(tensor: RequestInput, manifest: Manifest) -> Tensor:
    assert tensor.data is not None
    shape = list(tensor.shape)
    flat = json_values(tensor.data, shape)
    if len(flat) != math.prod(shape):
        raise TensorError(
            f"input '{tensor.name}' has {len(flat)} elements; shape {shape} needs "
            f"{math.prod(shape)}"
        )
    if manifest.tabular and tensor.name == manifest.input_name:
        _check_elements(tensor.name, tensor.datatype, flat, manifest)
        values = np.asarray([math.nan if v is None else v for v in flat], dtype=np.float64)
        return Tensor(tensor.name, tensor.datatype, shape, values)
    if tensor.datatype == "BYTES":
        return Tensor(tensor.name, tensor.datatype, shape, np.asarray(flat, dtype=object))
    try:
        values = np.asarray(flat)  # numbers give a numeric array; anything else is refused later
    except (ValueError, OverflowError):
        values = np.asarray(flat, dtype=object)
    return Tensor(tensor.name, tensor.datatype, shape, values)


def _check_elements(name: str, datatype: str, flat: list[Any], manifest: Manifest) -> None:
    """Each JSON element of a tabular input, named by row and feature when it is wrong."""
    if datatype not in ELEMENT_CHECKS:
        raise TensorError(
            f"input '{name}' has datatype '{datatype}'; this model accepts "
            f"{', '.join(ELEMENT_CHECKS)}"
        )
    check, wanted = ELEMENT_CHECKS[datatype]
    nullable = manifest.nullable
    width = len(nullable)
    for index, value in enumerate(flat):
        column = index % width if width else 0
        if nullable and nullable[column] and (value is None or value != value):
            continue  # a missing value the model was built to take
        problem = None
        if not check(value):
            problem = f"is {value!r}; {datatype} needs {wanted}"
        elif (float32 := float32_problem(value)) is not None:
            problem = FLOAT32_MESSAGES[float32]
        if problem is not None:
            feature = manifest.features[column].name if width else "?"
            raise TensorError(
                f"input '{name}' element {index} (row {index // max(width, 1)}, feature "
                f"'{feature}') {problem}"
            )


def binary_outputs(request: InferenceRequest, wanted: list[str]) -> set[str]:
    """The outputs to answer as binary data."""
    everything = bool((request.parameters or {}).get("binary_data_output", False))
    asked = {output.name: output for output in request.outputs or []}
    chosen = set()
    for name in wanted:
        own = (asked[name].parameters or {}).get("binary_data") if name in asked else None
        if own is True or (own is None and everything):
            chosen.add(name)
    return chosen


def response_body(
    manifest: Manifest,
    result: PredictionResult,
    wanted: list[str],
    binary: set[str],
    header: dict[str, Any],
) -> tuple[bytes, str | None]:
    """The response body, and the JSON header's length when binary data follows it."""
    dtypes = {spec.name: DATATYPES[spec.dtype] for spec in manifest.outputs}
    outputs, blobs = [], []
    for name in wanted:
        array = result.tensors[name]
        entry: dict[str, Any] = {"name": name, "datatype": dtypes[name], "shape": list(array.shape)}
        if name in binary:
            blob = raw_bytes(array, dtypes[name])
            entry["parameters"] = {BINARY_SIZE: len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = tensor_values(array.reshape(-1))
        outputs.append(entry)
    document = orjson.dumps({**header, "outputs": outputs}, option=_JSON_OPTIONS)
    if not blobs:
        return document, None
    return b"".join([document, *blobs]), str(len(document))
