"""One request's or job's rows as an Arrow IPC record batch of the prediction log's columns.

A column is the buffers numpy already holds (the features matrix, the outputs) or makes in one
call (a batch's constant strings, repeated); a tensor model's outputs alone are a JSON object per
row. The record batch's message is framed here (`RecordBatch.message`): its metadata has one
shape for every batch of a schema, so it is packed with `struct`, where building it through an
Arrow library cost ~0.4 ms a batch, most of a 1-row request's own time. The schema message, once
per segment, comes from nanoarrow (`schema_message`); tests/onnxq/telemetry read what both
write back with nanoarrow.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import nanoarrow as na
import numpy as np
import orjson
from nanoarrow.ipc import StreamWriter

from drift import log_segments as fmt

# A column's type, as the schema key says it: (kind, width of a fixed-size list or 0).
Kind = tuple[str, int]
_PADDING = [b"\0" * n for n in range(8)]
_ARROW = {
    "timestamp": lambda _: na.timestamp("ms", "UTC"),
    "utf8": lambda _: na.string(),
    "int64": lambda _: na.int64(),
    "float64": lambda _: na.float64(),
    "float32": lambda _: na.float32(),
    "float32_list": lambda width: na.fixed_size_list(na.float32(), width),
}


@dataclass(frozen=True)
class RecordBatch:
    """A batch's Arrow buffers and where they go: the segment of its model version and day."""

    model: str
    version: int
    ts_ms: int
    rows: int
    schema_key: tuple[Any, ...]  # (model, version, (name, kind)...): one schema per segment
    nodes: list[int]  # (length, null count) of each column, then of its child, flattened
    spans: list[int]  # (offset in the body, bytes) of each buffer, flattened
    body: list[Any]  # the buffers, each padded to 8 bytes, in Arrow's order

    @property
    def segment_key(self) -> tuple[str, str, int]:
        return _day(self.ts_ms // 86_400_000), self.model, self.version

    def message(self) -> list[Any]:
        """The encapsulated IPC message of this record batch, as its parts to write in order
        (not joined: a million-row job's body is 250 MB): metadata, then the body's buffers."""
        body_length = self.spans[-2] + self.spans[-1] + (-self.spans[-1] % 8)
        metadata = _record_batch_metadata(self.rows, self.nodes, self.spans, body_length)
        return [struct.pack("<iI", -1, len(metadata)), metadata, *self.body]


@lru_cache(maxsize=64)
def _offsets(rows: int, length: int) -> bytes:
    """The utf8 offsets of `rows` strings of `length` bytes each (a batch's repeated value)."""
    return (np.arange(rows + 1, dtype=np.int32) * length).tobytes()


@cache
def _day(days_since_epoch: int) -> str:
    return datetime.fromtimestamp(days_since_epoch * 86_400, UTC).strftime("%Y-%m-%d")


def _record_batch_metadata(
    rows: int, nodes: list[int], spans: list[int], body_length: int
) -> bytes:
    """Arrow's Message flatbuffer holding a RecordBatch (format/Message.fbs), laid out by hand:
    root offset, Message's vtable and table, RecordBatch's vtable and table, then the nodes and
    the buffers vectors (each element 8-byte aligned). Padded to a multiple of 8."""
    node_count, buffer_count = len(nodes) // 2, len(spans) // 2
    nodes_at = 84  # the nodes vector's length prefix; its elements start 8-aligned at 88
    buffers_at = nodes_at + 4 + 16 * node_count + 4  # 4 bytes of padding before the prefix
    metadata = struct.pack(
        f"<I6HiIhBxxxxxq5Hxxxxxx" f"iIqIxxxxxxxx" f"I{2 * node_count}qxxxxI{2 * buffer_count}q",
        16,  # root: the Message table
        12, 24, 8, 10, 4, 16,  # Message vtable: its size, the table's, where version, header
        # type, header and body length are
        12, 56 - 20, 4, 3, body_length,  # Message: vtable 12 back, header at 56, V5, RecordBatch
        10, 24, 8, 4, 16,  # RecordBatch vtable: sizes, where length, nodes and buffers are
        16, nodes_at - 60, rows, buffers_at - 72,  # RecordBatch: vtable 16 back
        node_count, *nodes, buffer_count, *spans,
    )  # fmt: skip
    # The message's metadata ends 8-aligned, counting the 8 bytes of its prefix.
    return metadata + _PADDING[-len(metadata) % 8]


@cache
def schema_message(key: tuple[Any, ...]) -> bytes:
    """The IPC schema message of a segment whose batches have `key` (RecordBatch.schema_key)."""
    model, version, *columns = key
    struct_type = na.struct({name: _ARROW[kind](width) for name, (kind, width) in columns},
                            nullable=False)  # fmt: skip
    schema = na.c_schema(struct_type).modify(
        metadata={"onnxq.log_format": fmt.FORMAT_VERSION, "model": model, "version": str(version)}
    )
    parts: list[bytes] = []

    class _Sink:
        def write(self, data: Any) -> int:
            parts.append(bytes(data))
            return len(data)

    StreamWriter.from_writable(_Sink()).write_stream(na.c_array_stream([], schema))
    return parts[0]  # the schema; what follows is the empty stream's end


def record_batch(
    *,
    model: str,
    version: int,
    ts_ms: int,
    source: str,
    request_id: str | None,
    job_id: str | None,
    rows: int,
    first_row: int,
    features: np.ndarray | None,
    columns: Sequence[tuple[str, Sequence[Any] | np.ndarray]],
    latency_ms: float,
) -> RecordBatch:
    """The record batch of `rows` rows (`features`: float32 matrix, or None)."""
    out = _Columns(rows)
    out.fixed(fmt.TS, "timestamp", struct.pack("<q", ts_ms) * rows)
    out.repeated(fmt.SOURCE, source)
    out.repeated(fmt.REQUEST_ID, request_id)
    out.repeated(fmt.JOB_ID, job_id)
    out.fixed(fmt.ROW, "int64", np.arange(first_row, first_row + rows, dtype=np.int64))
    if features is not None:
        out.float32_rows(fmt.FEATURES, features)
    for key, values in columns:
        if len(values) != rows:
            raise ValueError(f"{key}: {len(values)} values for {rows} rows")
        out.output(key, values)
    out.fixed(fmt.LATENCY_MS, "float64", struct.pack("<d", latency_ms) * rows)
    key = (model, version, *out.kinds)
    return RecordBatch(model, version, ts_ms, rows, key, out.nodes, out.spans, out.body)


class _Columns:
    """The columns of one batch, gathered as Arrow's nodes and buffers (the body)."""

    def __init__(self, rows: int):
        self.rows = rows
        self.kinds: list[tuple[str, Kind]] = []
        self.nodes: list[int] = []
        self.spans: list[int] = []
        self.body: list[Any] = []
        self._offset = 0

    def _buffer(self, data: Any, size: int) -> None:
        self.spans += (self._offset, size)
        self.body.append(data)
        padding = -size % 8  # every buffer starts 8-byte aligned
        if padding:
            self.body.append(_PADDING[padding])
        self._offset += size + padding

    def _absent(self) -> None:
        """A buffer of no bytes: the validity bitmap of a column without nulls."""
        self.spans += (self._offset, 0)

    def fixed(self, name: str, kind: str, values: np.ndarray | bytes) -> None:
        self.kinds.append((name, (kind, 0)))
        self.nodes += (self.rows, 0)
        self._absent()
        if isinstance(values, bytes):
            self._buffer(values, len(values))
        else:
            values = np.ascontiguousarray(values)
            self._buffer(values, values.nbytes)

    def repeated(self, name: str, value: str | None) -> None:
        """A utf8 column of one value (or null) on every row: a batch's source and ids."""
        rows = self.rows
        self.kinds.append((name, ("utf8", 0)))
        if value is None:
            self.nodes += (rows, rows)
            self._buffer(bytes((rows + 7) // 8), (rows + 7) // 8)
            self._buffer(_offsets(rows, 0), 4 * (rows + 1))
            self._absent()
            return
        encoded = value.encode()
        self.nodes += (rows, 0)
        self._absent()
        self._buffer(_offsets(rows, len(encoded)), 4 * (rows + 1))
        self._buffer(encoded * rows, len(encoded) * rows)

    def strings(self, name: str, values: Sequence[str]) -> None:
        encoded = [value.encode() for value in values]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        data = b"".join(encoded)
        self.kinds.append((name, ("utf8", 0)))
        self.nodes += (len(encoded), 0)
        self._absent()
        self._buffer(offsets, offsets.nbytes)
        self._buffer(data, len(data))

    def float32_rows(self, name: str, matrix: np.ndarray) -> None:
        """A rows x width float32 matrix as fixed_size_list<float32>[width], its buffer as is."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        rows, width = matrix.shape
        self.kinds.append((name, ("float32_list", width)))
        self.nodes += (rows, 0, rows * width, 0)
        self._absent()
        self._absent()
        self._buffer(matrix.reshape(-1), matrix.nbytes)

    def output(self, key: str, values: Sequence[Any] | np.ndarray) -> None:
        """A model output column: numbers from their array, labels by type, tensors as JSON."""
        if key == fmt.OUTPUTS:
            dumps, numpy = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY
            return self.strings(key, [dumps(v, option=numpy).decode() for v in values])
        if key == fmt.LABEL:
            first = values[0] if len(values) else 0
            if isinstance(first, str):
                return self.strings(key, values)  # type: ignore[arg-type]
            if isinstance(first, float):
                return self.fixed(key, "float64", np.asarray(values, dtype=np.float64))
            return self.fixed(key, "int64", np.asarray(values, dtype=np.int64))
        array = np.asarray(values, dtype=np.float32)  # probabilities, a regressor's prediction
        if array.ndim == 1:
            return self.fixed(key, "float32", array)
        return self.float32_rows(key, array)
