"""An Arrow IPC stream's columns, read in place: numpy views of the record batches' buffers.

nanoarrow's reader copies every batch into buffers of its own (a million rows of 30 features:
120 MB copied, into memory this machine must first fault in). The stream's record batch
messages are simple (Message.fbs: a length, field nodes, buffer spans into the body), so they
are read here from the bytes as they are, mapped from the blob store: the columns are views.
nanoarrow still reads the schema, and reads the whole stream whenever the fast path does not
apply: dictionary or compressed batches, or a field type whose buffers are not laid out below.

`ArrowColumns.batches(indexes)` gives, per record batch, its rows and the chosen top-level
columns: numbers as numpy reads their buffer, booleans as 0/1, a column with nulls as float64
with NaN for them.
"""

from __future__ import annotations

import io
import mmap
import struct
from collections.abc import Iterator
from typing import Any

import nanoarrow as na
import numpy as np

NUMPY_OF_ARROW = {  # Arrow's number types as numpy's (file columns, result tables)
    na.Type.INT8: np.int8, na.Type.INT16: np.int16, na.Type.INT32: np.int32,
    na.Type.INT64: np.int64, na.Type.UINT8: np.uint8, na.Type.UINT16: np.uint16,
    na.Type.UINT32: np.uint32, na.Type.UINT64: np.uint64, na.Type.HALF_FLOAT: np.float16,
    na.Type.FLOAT: np.float32, na.Type.DOUBLE: np.float64,
}  # fmt: skip
NUMERIC = {na.Type.BOOL, *NUMPY_OF_ARROW}
# Buffers of one array of each type in a record batch (the columnar format's layouts); a type not
# here sends the stream to nanoarrow's reader.
_FIXED = {*NUMERIC, na.Type.DATE32, na.Type.DATE64, na.Type.TIME32, na.Type.TIME64,
          na.Type.TIMESTAMP, na.Type.DURATION, na.Type.DECIMAL128, na.Type.DECIMAL256,
          na.Type.FIXED_SIZE_BINARY, na.Type.INTERVAL_MONTHS,
          na.Type.INTERVAL_DAY_TIME}  # fmt: skip
_BUFFERS = {**dict.fromkeys(_FIXED, 2), na.Type.STRING: 3, na.Type.BINARY: 3,
            na.Type.LARGE_STRING: 3, na.Type.LARGE_BINARY: 3, na.Type.LIST: 2,
            na.Type.LARGE_LIST: 2, na.Type.MAP: 2, na.Type.FIXED_SIZE_LIST: 1,
            na.Type.STRUCT: 1}  # fmt: skip
_RECORD_BATCH = 3  # Message.header_type
_END = b"\xff\xff\xff\xff\x00\x00\x00\x00"


class NotArrow(ValueError):
    """Not a whole Arrow IPC stream."""


class ArrowColumns:
    """An Arrow IPC stream's field names and types, and its batches' columns."""

    def __init__(self, data: bytes | mmap.mmap):
        self.data = data
        try:
            self._messages = list(_messages(data))
            schema_end = self._messages[0][0] if self._messages else len(data)
            # nanoarrow reads the schema (its flatbuffer of types), from its message alone.
            head = bytes(data[:schema_end]) + _END
            self.schema = na.ArrayStream.from_readable(io.BytesIO(head)).schema
        except NotArrow:
            raise
        except Exception as exc:  # nanoarrow's own error
            raise NotArrow(str(exc)) from None
        fields = [self.schema.field(i) for i in range(self.schema.n_fields)]
        self.names = [field.name for field in fields]
        self.types = [field.type for field in fields]
        layouts = [_layout(field) for field in fields]
        self._mapped = all(layout is not None for layout in layouts) and all(
            header == _RECORD_BATCH for _, header, *_ in self._messages
        )
        # Each batch's rows, field nodes and buffer spans (and its body's place); a compressed
        # one is for nanoarrow to decompress (or to say why it cannot).
        self._batches = []
        for _, _, meta_at, meta_end, body_at, body_length in self._messages if self._mapped else []:
            length, nodes, buffers, compressed = _record_batch(data, meta_at, meta_end)
            self._mapped = self._mapped and not compressed
            self._batches.append((length, nodes, buffers, body_at, body_length))
        # Where each top-level field's first node and buffer are in a batch's lists.
        self._first: list[tuple[int, int]] = []
        nodes = buffers = 0
        for layout in layouts if self._mapped else []:
            self._first.append((nodes, buffers))
            nodes, buffers = nodes + layout[0], buffers + layout[1]  # type: ignore[index]

    def not_number(self, index: int) -> str | None:
        """What the column is, when it is not numbers (None when it is)."""
        kind = self.types[index]
        return None if kind in NUMERIC else kind.name.lower()

    def batches(self, indexes: list[int]) -> Iterator[tuple[int, list[np.ndarray]]]:
        """(rows, the columns at `indexes`) of each record batch, in order."""
        if not self._mapped:
            yield from self._copied(indexes)
            return
        for length, nodes, buffers, body_at, body_length in self._batches:
            columns = []
            for index in indexes:
                node, buffer = self._first[index]
                if node >= len(nodes) or buffer + 2 > len(buffers):
                    raise NotArrow("a record batch has fewer columns than its schema")
                rows, nulls = nodes[node]
                spans = buffers[buffer : buffer + 2]
                if any(o < 0 or n < 0 or o + n > body_length for o, n in spans):
                    raise NotArrow("a record batch's buffers end past its body")
                columns.append(self._column(index, rows, nulls, spans, body_at))
            yield length, columns

    def _column(
        self, index: int, rows: int, nulls: int, spans: list[tuple[int, int]], body_at: int
    ) -> np.ndarray:
        (validity_at, validity_bytes), (data_at, data_bytes) = spans
        kind = self.types[index]
        width = 1 / 8 if kind == na.Type.BOOL else np.dtype(NUMPY_OF_ARROW[kind]).itemsize
        if data_bytes < rows * width:
            raise NotArrow("a column is shorter than its batch")
        data = memoryview(self.data)[body_at + data_at : body_at + data_at + data_bytes]
        validity = b""
        if nulls and validity_bytes:
            validity = memoryview(self.data)[body_at + validity_at :][:validity_bytes]
        return column_values(kind, data, validity, 0, rows)

    def _copied(self, indexes: list[int]) -> Iterator[tuple[int, list[np.ndarray]]]:
        """The same through nanoarrow's reader, which copies each batch."""
        source = self.data if isinstance(self.data, mmap.mmap) else io.BytesIO(self.data)
        if isinstance(source, mmap.mmap):
            source.seek(0)
        try:
            batches = list(na.ArrayStream.from_readable(source))
        except Exception as exc:
            raise NotArrow(str(exc)) from None
        for batch in batches:
            children = [batch.child(index) for index in indexes]
            yield (
                len(batch),
                [
                    column_values(c.schema.type, c.buffer(1), c.buffer(0), c.offset, len(c))
                    for c in children
                ],
            )


def column_values(kind: Any, data: Any, validity: Any, offset: int, rows: int) -> np.ndarray:
    """Rows `offset` .. `offset + rows` of a numeric Arrow column from its data and validity
    buffers: numbers as numpy reads them (a view), booleans as 0/1, and as float64 with NaN for
    the nulls when there is a bitmap."""
    if kind == na.Type.BOOL:
        bits = np.frombuffer(data, dtype=np.uint8)
        values = np.unpackbits(bits, bitorder="little")[offset : offset + rows]
    else:
        values = np.frombuffer(data, dtype=NUMPY_OF_ARROW[kind])[offset : offset + rows]
    if len(validity):  # a bitmap is there when the column may hold nulls
        bits = np.frombuffer(validity, dtype=np.uint8)
        valid = np.unpackbits(bits, bitorder="little")[offset : offset + rows].astype(bool)
        values = values.astype(np.float64)
        values[~valid] = np.nan
    return values


def _layout(schema: Any) -> tuple[int, int] | None:
    """(field nodes, buffers) of one field and its children in a record batch; None when this
    reader does not lay it out (dictionaries, unions, views, run-end encoding)."""
    if schema.type not in _BUFFERS:  # a dictionary's type is DICTIONARY: not here
        return None
    nodes, buffers = 1, _BUFFERS[schema.type]
    for i in range(schema.n_fields):
        child = _layout(schema.field(i))
        if child is None:
            return None
        nodes, buffers = nodes + child[0], buffers + child[1]
    return nodes, buffers


def _messages(data: bytes | mmap.mmap) -> Iterator[tuple[int, int, int, int, int, int]]:
    """Each message after the schema: (its start, header type, metadata start and end, body
    start, body length); the schema message is the first and is not given."""
    at, first = 0, True
    while True:
        if at == len(data) and not first:  # no end-of-stream marker: the file's end is the end
            return
        if at + 4 > len(data):
            raise NotArrow("the stream ends inside a message's prefix")
        (size,) = struct.unpack_from("<i", data, at)
        prefix = 4
        if size == -1:  # the continuation marker, then the metadata's size
            if at + 8 > len(data):
                raise NotArrow("the stream ends inside a message's prefix")
            (size,) = struct.unpack_from("<i", data, at + 4)
            prefix = 8
        if size == 0:
            return
        meta_at, meta_end = at + prefix, at + prefix + size
        if size < 0 or meta_end > len(data):
            raise NotArrow("a message's metadata ends past the stream")
        header, body_length = _message(data, meta_at, meta_end)
        body_at = meta_end
        if body_length < 0 or body_at + body_length > len(data):
            raise NotArrow("a message's body ends past the stream")
        if not first:
            yield at, header, meta_at, meta_end, body_at, body_length
        first, at = False, body_at + body_length


class _Table:
    """A flatbuffer table in `data` at `at` (bounds checked against `end`)."""

    def __init__(self, data: bytes | mmap.mmap, at: int, end: int):
        self.data, self.at, self.end = data, at, end
        (back,) = struct.unpack_from("<i", data, self._checked(at, 4))
        self.vtable = self._checked(at - back, 4)
        self.vtable_size = struct.unpack_from("<H", data, self.vtable)[0]

    def _checked(self, at: int, size: int) -> int:
        if at < 0 or at + size > self.end:
            raise NotArrow("a message's metadata is not a flatbuffer")
        return at

    def field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot + 2 > self.vtable_size:
            return None
        (offset,) = struct.unpack_from("<H", self.data, self._checked(self.vtable + slot, 2))
        return self.at + offset if offset else None

    def scalar(self, index: int, fmt: str, default: int = 0) -> int:
        at = self.field(index)
        if at is None:
            return default
        return int(struct.unpack_from(fmt, self.data, self._checked(at, struct.calcsize(fmt)))[0])

    def target(self, index: int) -> int | None:
        """Where an offset field (a table, a vector) points."""
        at = self.field(index)
        if at is None:
            return None
        return at + struct.unpack_from("<I", self.data, self._checked(at, 4))[0]

    def structs(self, index: int, size: int) -> list[tuple[int, int]]:
        """A vector of structs of two int64s (FieldNode, Buffer)."""
        at = self.target(index)
        if at is None:
            return []
        (count,) = struct.unpack_from("<I", self.data, self._checked(at, 4))
        self._checked(at + 4, count * size)
        values = np.frombuffer(self.data, "<i8", 2 * count, at + 4).reshape(count, 2)
        return [(int(a), int(b)) for a, b in values]


def _message(data: bytes | mmap.mmap, at: int, end: int) -> tuple[int, int]:
    """A Message's header type and body length."""
    root = at + struct.unpack_from("<I", data, at)[0] if at + 4 <= end else end
    message = _Table(data, root, end)
    return message.scalar(1, "<B"), message.scalar(3, "<q")


def _record_batch(
    data: bytes | mmap.mmap, at: int, end: int
) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]], bool]:
    """A RecordBatch message's rows, field nodes, buffer spans and whether it is compressed."""
    message = _Table(data, at + struct.unpack_from("<I", data, at)[0], end)
    header = message.target(2)
    if header is None:
        raise NotArrow("a record batch message without its header")
    batch = _Table(data, header, end)
    compressed = batch.field(3) is not None
    return batch.scalar(0, "<q"), batch.structs(1, 16), batch.structs(2, 16), compressed
