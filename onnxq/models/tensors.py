"""A tensor model's inputs: how JSON values become its arrays, and how its rows are stored.

A tabular model takes one float32 matrix (rows x features). A tensor model takes one or more
named tensors whose first axis is the batch and whose other axes are fixed (a [N, 1, 28, 28]
image, [N, 16] token ids next to [N, 4] numbers); one "row" is one item of each. Rows are kept
as a numpy structured array, one record per row with a field per input, which is also their form
in Redis (a job's stored rows): one contiguous buffer, sliced and joined like any matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxq.errors import InvalidInput
from onnxq.models.manifest import DType, Manifest, TensorSpec

NUMPY_DTYPES: dict[DType, Any] = {
    "float32": np.float32,
    "float64": np.float64,
    "float16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "uint8": np.uint8,
    "bool": np.bool_,
}
_FLOATS = ("float32", "float64", "float16")


class TensorProblem(ValueError):
    """A value cannot be this input tensor; the message says why, for the client."""


def row_shape(spec: TensorSpec) -> tuple[int, ...]:
    """The shape of one row of an input: every axis after the batch axis."""
    return tuple(int(size) for size in spec.shape[1:] if size is not None)


def row_dtype(manifest: Manifest) -> np.dtype:
    """One stored row of a tensor model: a record with one field per input."""
    return np.dtype(
        [(spec.name, NUMPY_DTYPES[spec.dtype], row_shape(spec)) for spec in manifest.inputs]
    )


def stored_width(batch: np.ndarray) -> int:
    """What a job message's `width` says about a batch's stored rows: the features per row of a
    tabular model's matrix, the bytes per record of a tensor model's."""
    return int(batch.shape[1]) if batch.ndim == 2 else batch.dtype.itemsize


# Up to this size a batch's stored rows are copied to bytes (one Redis argument among the rest);
# beyond it they go as a view of the array (a million-row file: 120 MB not copied twice).
COPY_ROWS_BELOW = 64 * 1024


def stored_bytes(batch: np.ndarray) -> bytes | memoryview:
    """A batch's rows as the job store keeps them (what `stored_rows` reads back)."""
    batch = np.ascontiguousarray(batch)
    if batch.nbytes <= COPY_ROWS_BELOW:
        return batch.tobytes()
    return memoryview(batch.reshape(-1).view(np.uint8))


def stored_rows(manifest: Manifest, raw: bytes) -> np.ndarray:
    """A job's stored rows as the model's batch (the inverse of `stored_bytes`)."""
    if manifest.tabular:
        return np.frombuffer(raw, dtype=np.float32).reshape(-1, len(manifest.features))
    dtype = row_dtype(manifest)
    if len(raw) % dtype.itemsize:
        raise InvalidInput(
            f"the stored rows ({len(raw)} bytes) are not whole rows of the model's inputs "
            f"({dtype.itemsize} bytes each)"
        )
    return np.frombuffer(raw, dtype=dtype)


def model_feeds(manifest: Manifest, batch: np.ndarray) -> dict[str, np.ndarray]:
    """The session's input feeds for a batch (a matrix, or records of `row_dtype`)."""
    if manifest.tabular:
        return {manifest.input_name: batch}
    return {spec.name: np.ascontiguousarray(batch[spec.name]) for spec in manifest.inputs}


def tensor_records(manifest: Manifest, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Whole input arrays by name (of the same number of rows) as a batch of records."""
    missing = [spec.name for spec in manifest.inputs if spec.name not in arrays]
    if missing:
        raise InvalidInput(f"the model's inputs {missing} are missing")
    rows = len(next(iter(arrays.values())))
    records = np.zeros(rows, dtype=row_dtype(manifest))
    for spec in manifest.inputs:
        shape = (rows, *row_shape(spec))
        if arrays[spec.name].shape != shape:
            raise InvalidInput(
                f"input '{spec.name}' has shape {list(arrays[spec.name].shape)}; "
                f"expected {list(shape)}"
            )
        records[spec.name] = arrays[spec.name]
    return records


def tensor_array(value: Any, spec: TensorSpec, shape: tuple[int, ...]) -> np.ndarray:
    """`value` (nested JSON lists) as input `spec` of exactly `shape`, or TensorProblem."""
    if value is None:
        raise TensorProblem(f"is null; expected values of shape {list(shape)}")
    try:
        array = np.asarray(value)
    except ValueError:
        raise TensorProblem(f"is ragged: it must be nested lists of shape {list(shape)}") from None
    if array.shape != shape:
        raise TensorProblem(f"has shape {list(array.shape)}; expected {list(shape)}")
    kind = array.dtype.kind
    if spec.dtype == "bool":
        if kind != "b":
            raise TensorProblem("must hold true or false only")
        return array
    allowed = "iuf" if spec.dtype in _FLOATS else "iu"
    if kind not in allowed:
        wanted = "numbers" if spec.dtype in _FLOATS else "integers"
        raise TensorProblem(f"must hold {wanted} only ({spec.dtype}); found {_found(array)}")
    if kind == "f" and not np.isfinite(array).all():
        raise TensorProblem("holds NaN or infinity; values must be finite numbers")
    numpy_type = NUMPY_DTYPES[spec.dtype]
    limits = np.finfo(numpy_type) if spec.dtype in _FLOATS else np.iinfo(numpy_type)
    if array.size and (array.min() < limits.min or array.max() > limits.max):
        raise TensorProblem(f"holds a value outside the {spec.dtype} range")
    return array.astype(numpy_type)


def _found(array: np.ndarray) -> str:
    if array.dtype.kind == "b":
        return "true/false"
    if array.dtype.kind == "U":
        return "a string"
    if array.dtype.kind == "f":
        return "a fraction"
    return "null or mixed values"


def tensor_rows(instances: list[Any], manifest: Manifest) -> np.ndarray:
    """JSON rows for a tensor model as its records; 422 naming each bad row and input.

    A row is one input's value (nested lists of its row shape) when the model has one input,
    else an object mapping every input name to its value.
    """
    specs = manifest.inputs
    names = [spec.name for spec in specs]
    records = np.zeros(len(instances), dtype=row_dtype(manifest))
    details: list[dict[str, Any]] = []
    for index, row in enumerate(instances):
        if len(specs) == 1 and not isinstance(row, dict):
            row = {names[0]: row}
        if not isinstance(row, dict):
            details.append(
                {
                    "loc": ["instances", index],
                    "row": index,
                    "message": f"expected an object of the inputs {names}",
                }
            )
            continue
        for extra in sorted(set(row) - set(names)):
            details.append(
                {"loc": ["instances", index, extra], "row": index, "message": "unknown input"}
            )
        for spec in specs:
            loc = ["instances", index, spec.name]
            if spec.name not in row:
                details.append({"loc": loc, "row": index, "message": "missing input"})
                continue
            try:
                records[index][spec.name] = tensor_array(row[spec.name], spec, row_shape(spec))
            except TensorProblem as exc:
                details.append({"loc": loc, "row": index, "message": f"input {exc}"})
    if details:
        raise InvalidInput(f"{len(details)} problem(s) in the request body", details)
    return records
