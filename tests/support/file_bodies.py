"""Job bodies as files: an Arrow IPC stream (nanoarrow, through onnxq/models/result_table.py) or a
.npy array (numpy)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from onnxq.models import result_table


def arrow_stream(columns: dict[str, Any], batch_rows: int | None = None) -> bytes:
    """Columns (numpy arrays, or lists with None for a null) as an Arrow IPC stream, in record
    batches of `batch_rows` rows (one batch if None): onnxq's own table writer."""
    return result_table.arrow_stream(columns, batch_rows)


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()
