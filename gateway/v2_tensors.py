"""Open Inference Protocol tensors: their datatypes, their raw bytes, and the model batch they make.

A V2 input arrives as JSON `data` (HTTP), as raw little-endian bytes (HTTP's binary tensor data
extension, gRPC's `raw_input_contents`) or as typed gRPC `contents`. Each becomes a numpy array
(`Tensor`), and every path then goes through `model_batch`: the same checks (names, shapes,
datatypes, NaN/Inf, range, row limit) whatever protocol carried it, and the same messages.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxq.errors import TooManyRows
from onnxq.models.inputs import FLOAT32_MAX, check_row_limit
from onnxq.models.manifest import DType, Manifest, TensorSpec
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
# Every numeric datatype of the protocol, as the little-endian numpy type of its raw bytes.
RAW_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in {
        "BOOL": "|b1",
        "UINT8": "|u1",
        "UINT16": "<u2",
        "UINT32": "<u4",
        "UINT64": "<u8",
        "INT8": "|i1",
        "INT16": "<i2",
        "INT32": "<i4",
        "INT64": "<i8",
        "FP16": "<f2",
        "FP32": "<f4",
        "FP64": "<f8",
    }.items()
}
_FLOATS = {"FP16", "FP32", "FP64"}
_INTEGERS = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}


class TensorError(ValueError):
    """The request is well formed but does not fit the model; its message is for the client."""


@dataclass(frozen=True)
class Tensor:
    """One input tensor as sent: name, datatype, shape and its values (any numeric dtype)."""

    name: str
    datatype: str
    shape: list[int]
    values: np.ndarray  # flat, in the datatype's own numpy type (object for BYTES)


def raw_tensor(name: str, datatype: str, shape: list[int], raw: bytes | memoryview) -> Tensor:
    """A tensor from its raw bytes (binary extension, gRPC raw contents), checked for size."""
    count = math.prod(shape)
    if datatype == "BYTES":
        values = deserialize_bytes(raw, name)
    elif datatype in RAW_DTYPES:
        dtype = RAW_DTYPES[datatype]
        if len(raw) != count * dtype.itemsize:
            raise TensorError(
                f"input '{name}' has {len(raw)} bytes of data; shape {shape} of {datatype} "
                f"needs {count * dtype.itemsize}"
            )
        values = np.frombuffer(raw, dtype=dtype)
    else:
        raise TensorError(f"input '{name}' has datatype '{datatype}', which onnxq does not take")
    if len(values) != count:
        raise TensorError(f"input '{name}' has {len(values)} elements; shape {shape} needs {count}")
    return Tensor(name, datatype, list(shape), values)


def deserialize_bytes(raw: bytes | memoryview, name: str) -> np.ndarray:
    """BYTES elements: each a 4-byte little-endian length, then that many bytes."""
    view, position, items = memoryview(raw), 0, []
    while position < len(view):
        if position + 4 > len(view):
            raise TensorError(f"input '{name}': BYTES data ends inside an element's length")
        (size,) = struct.unpack_from("<I", view, position)
        position += 4
        if position + size > len(view):
            raise TensorError(f"input '{name}': a BYTES element runs past the data's end")
        items.append(bytes(view[position : position + size]))
        position += size
    return np.asarray(items, dtype=object)


def serialize_bytes(values: np.ndarray) -> bytes:
    """The inverse of `deserialize_bytes`, for a BYTES output (strings are written as UTF-8)."""
    parts = []
    for value in values.reshape(-1).tolist():
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)


def raw_bytes(array: np.ndarray, datatype: str) -> bytes:
    """An output array as the protocol's raw bytes (row-major, little-endian)."""
    if datatype == "BYTES":
        return serialize_bytes(array)
    return np.ascontiguousarray(array, dtype=RAW_DTYPES[datatype]).tobytes()


def model_batch(
    tensors: list[Tensor], manifest: Manifest, max_rows: int, jobs_url: Callable[[], str]
) -> np.ndarray:
    """The model's batch (OnnxModel.predict) from the request's input tensors."""
    if manifest.tabular:
        names = [tensor.name for tensor in tensors]
        if names != [manifest.input_name]:
            raise TensorError(
                f"model '{manifest.name}' takes exactly one input, '{manifest.input_name}'; "
                f"got {names}"
            )
        return feature_matrix(tensors[0], manifest, max_rows, jobs_url)
    return tensor_batch(tensors, manifest, max_rows, jobs_url)


def check_rows(rows: int, max_rows: int, jobs_url: Callable[[], str]) -> None:
    try:
        check_row_limit(rows, max_rows, jobs_url)
    except TooManyRows as exc:  # a bad request like any other in this protocol
        raise TensorError(exc.message) from None


def feature_matrix(
    tensor: Tensor, manifest: Manifest, max_rows: int, jobs_url: Callable[[], str]
) -> np.ndarray:
    """A tabular model's float32 matrix: any numeric datatype, finite and in float32's range
    (NaN only in a nullable feature, where it is a missing value)."""
    width = len(manifest.features)
    if tensor.datatype not in _FLOATS | _INTEGERS | {"BOOL"}:
        raise TensorError(
            f"input '{tensor.name}' has datatype '{tensor.datatype}'; this model takes numbers "
            "(FP16, FP32, FP64, INT8..INT64, UINT8..UINT64, BOOL)"
        )
    shape = tensor.shape
    if len(shape) != 2 or shape[1] != width or shape[0] < 1:
        raise TensorError(
            f"input '{tensor.name}' has shape {shape}; expected [n, {width}] "
            f"with n >= 1 rows of {width} features"
        )
    check_rows(shape[0], max_rows, jobs_url)
    matrix = tensor.values.reshape(shape[0], width)  # JSON data came as float64, None as NaN
    if tensor.datatype in _FLOATS:
        _check_floats(tensor.name, matrix, manifest)
    elif tensor.datatype in _INTEGERS and matrix.size and np.abs(matrix).max() > FLOAT32_MAX:
        raise TensorError(f"input '{tensor.name}' holds a value outside the float32 range")
    return np.asarray(matrix, dtype=np.float32)


def _check_floats(name: str, matrix: np.ndarray, manifest: Manifest) -> None:
    if np.isfinite(matrix).all() and (matrix.dtype != np.float64 or not _beyond_float32(matrix)):
        return  # the usual case, in one pass (a finite FP16 or FP32 value is in range)
    wide = matrix.astype(np.float64, copy=False)
    nullable = np.asarray(manifest.nullable, dtype=bool)
    finite = np.isfinite(wide)
    bad = ~finite & ~(np.isnan(wide) & nullable)
    bad |= finite & (np.abs(np.where(finite, wide, 0.0)) > FLOAT32_MAX)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        value = wide[row, column]
        problem = (
            "is outside the float32 range"
            if math.isfinite(value)
            else "is NaN or infinite; values must be finite numbers"
        )
        raise TensorError(
            f"input '{name}' element {row * matrix.shape[1] + column} (row {row}, feature "
            f"'{manifest.features[column].name}') {problem}"
        )


def _beyond_float32(matrix: np.ndarray) -> bool:
    return bool(matrix.size) and float(np.abs(matrix).max()) > FLOAT32_MAX


def tensor_batch(
    tensors: list[Tensor], manifest: Manifest, max_rows: int, jobs_url: Callable[[], str]
) -> np.ndarray:
    """A tensor model's records: every input by name, each of its row shape, the same rows."""
    specs = {spec.name: spec for spec in manifest.inputs}
    names = [tensor.name for tensor in tensors]
    if sorted(names) != sorted(specs):
        raise TensorError(f"model '{manifest.name}' takes the inputs {list(specs)}; got {names}")
    rows = tensors[0].shape[0] if tensors[0].shape else 0
    arrays = {}
    for tensor in tensors:
        spec = specs[tensor.name]
        shape = (rows, *row_shape(spec))
        if tuple(tensor.shape) != shape or rows < 1:
            raise TensorError(
                f"input '{tensor.name}' has shape {tensor.shape}; expected {list(shape)} "
                "(every input with the same number of rows, n >= 1)"
            )
        check_datatype(tensor, spec)
        check_rows(rows, max_rows, jobs_url)
        try:
            arrays[tensor.name] = tensor_array(tensor.values, spec, (math.prod(shape),)).reshape(
                shape
            )
        except TensorProblem as exc:
            raise TensorError(f"input '{tensor.name}' {exc}") from None
    return tensor_records(manifest, arrays)


def check_datatype(tensor: Tensor, spec: TensorSpec) -> None:
    """The datatypes a tensor input takes: its own; for a float input any number, for an
    integer input any integer (converted when every value fits)."""
    wanted = DATATYPES[spec.dtype]
    accepted = {wanted}
    if spec.dtype in ("float32", "float64", "float16"):
        accepted |= _FLOATS | _INTEGERS
    elif spec.dtype in ("int64", "int32", "uint8"):
        accepted |= _INTEGERS
    if tensor.datatype not in accepted:
        raise TensorError(
            f"input '{tensor.name}' has datatype '{tensor.datatype}'; the model takes {wanted}"
        )


def json_values(data: list[Any], shape: list[int]) -> list[Any]:
    """JSON `data`, flat or nested exactly as `shape`, as its row-major elements."""
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
