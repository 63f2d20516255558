"""A job's result as a table, one row per input row, for the result route's file formats.

Columns: a classifier's `label` and `probability_<class>` (one per class), a regressor's
`prediction` (or `prediction_<target>`), a tensor model's outputs flattened (`<output>` or
`<output>_<i>`). `arrow_stream` and `csv_text` write it; JSON pages take rows of it.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import nanoarrow as na
import numpy as np
from nanoarrow.ipc import StreamWriter

from onnxq.models.arrow_reader import NUMPY_OF_ARROW
from onnxq.models.results import PredictionResult, float32_values


def result_columns(result: dict[str, Any]) -> dict[str, np.ndarray]:
    """The table's columns from a job document's `result`."""
    columns: dict[str, np.ndarray] = {}
    if "labels" in result:
        columns["label"] = np.asarray(result["labels"])
        if "probabilities" in result:
            probabilities = np.asarray(result["probabilities"], dtype=np.float32)
            for index, name in enumerate(result.get("classes") or range(probabilities.shape[1])):
                columns[f"probability_{name}"] = probabilities[:, index]
    elif "predictions" in result:
        predictions = np.asarray(result["predictions"], dtype=np.float32)
        if predictions.ndim == 1:
            columns["prediction"] = predictions
        else:
            for index, name in enumerate(result.get("targets") or range(predictions.shape[1])):
                columns[f"prediction_{name}"] = predictions[:, index]
    for name, values in (result.get("outputs") or {}).items():
        array = np.asarray(values)
        flat = array.reshape(len(array), -1)
        if flat.shape[1] == 1:
            columns[name] = flat[:, 0]
        else:
            for index in range(flat.shape[1]):
                columns[f"{name}_{index}"] = flat[:, index]
    return columns


def result_table_columns(result: PredictionResult) -> dict[str, np.ndarray]:
    """The table's columns straight from a result's arrays (no JSON lists on the way)."""
    if result.task == "tensor":
        return result_columns({"outputs": result.columns})
    return result_columns({**result.columns, **result.constants})


def linked_result(model: str, version: int, job_id: str, rows: int) -> dict[str, Any]:
    """A large result's place in its job document: where it is, and how many rows it has."""
    return {"model": model, "version": version, "rows": rows, "href": f"/v1/jobs/{job_id}/result"}


def read_arrow(data: bytes) -> dict[str, np.ndarray]:
    """An Arrow stream `arrow_stream` wrote, as its columns (numbers as numpy, text as objects)."""
    stream = na.ArrayStream.from_readable(io.BytesIO(data))
    names = [stream.schema.field(i).name for i in range(stream.schema.n_fields)]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for batch in stream:
        for index, name in enumerate(names):
            child = batch.child(index)
            if child.schema.type == na.Type.STRING:
                parts[name].append(np.array(child.to_pylist(), dtype=object))
            else:
                dtype = NUMPY_OF_ARROW[child.schema.type]
                raw = np.frombuffer(child.buffer(1), dtype=dtype)
                parts[name].append(raw[child.offset : child.offset + len(child)])
    return {
        name: np.concatenate(chunks) if chunks else np.empty(0) for name, chunks in parts.items()
    }


def arrow_stream(columns: dict[str, Any], batch_rows: int | None = None) -> bytes:
    """The table as an Arrow IPC stream, in record batches of `batch_rows` rows (one if None).
    A column is a numpy array, or a list (text, or numbers with None for a null)."""
    names = list(columns)
    types = {name: na.Schema(_arrow(values).schema) for name, values in columns.items()}
    schema = na.struct(types, nullable=False)
    rows = len(next(iter(columns.values()))) if columns else 0
    step = batch_rows or max(rows, 1)
    out = io.BytesIO()
    with StreamWriter.from_writable(out) as writer:
        for start in range(0, max(rows, 1), step):
            end = min(start + step, rows)
            children = [_arrow(columns[name][start:end]) for name in names]
            writer.write_array(na.c_array_from_buffers(schema, end - start, [None],
                                                       children=children))  # fmt: skip
    return out.getvalue()


def _arrow(values: Any) -> Any:
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return na.c_array(np.ascontiguousarray(values))
    listed = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if isinstance(values, np.ndarray) or any(isinstance(v, str) for v in listed):
        return na.c_array([None if v is None else str(v) for v in listed], na.string())
    return na.c_array(listed, na.float64())  # numbers, None for a null


def csv_text(columns: dict[str, np.ndarray]) -> str:
    """The table as CSV with a header row; float32 values as their shortest round-trip decimals."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(list(columns))
    writer.writerows(zip(*(json_values(values) for values in columns.values()), strict=True))
    return out.getvalue()


def json_values(values: np.ndarray) -> list[Any]:
    """A column as JSON values (float32 as the shortest decimals that read back the same)."""
    return float32_values(values) if values.dtype == np.float32 else values.tolist()
