"""Job bodies as files, made the way a client's library makes them: an Arrow IPC stream
(nanoarrow) or a .npy array (numpy)."""

from __future__ import annotations

import io
from typing import Any

import nanoarrow as na
import numpy as np
from nanoarrow.ipc import StreamWriter


def arrow_stream(columns: dict[str, Any], batch_rows: int | None = None) -> bytes:
    """Columns (numpy arrays, or lists with None for a null) as an Arrow IPC stream, in record
    batches of `batch_rows` rows (one batch if None)."""
    names = list(columns)
    arrays = {name: _array(values) for name, values in columns.items()}
    schema = na.struct({name: na.Schema(arrays[name].schema) for name in names}, nullable=False)
    total = len(next(iter(columns.values())))
    step = batch_rows or max(total, 1)
    out = io.BytesIO()
    with StreamWriter.from_writable(out) as writer:
        for start in range(0, max(total, 1), step):
            end = min(start + step, total)
            children = [_array(_slice(columns[name], start, end)) for name in names]
            writer.write_array(na.c_array_from_buffers(schema, end - start, [None],
                                                       children=children))  # fmt: skip
    return out.getvalue()


def _slice(values: Any, start: int, end: int) -> Any:
    return values[start:end]


def _array(values: Any) -> Any:
    if isinstance(values, np.ndarray):
        return na.c_array(np.ascontiguousarray(values))
    if any(isinstance(v, str) for v in values):
        return na.c_array(values, na.string())
    return na.c_array(values, na.float64())


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()
