"""A Parquet file's numeric columns, read with numpy (pyarrow would not fit the images).

What pandas, pyarrow, polars and DuckDB write for a table of numbers: flat columns, required or
optional; data pages v1 and v2; PLAIN, dictionary (RLE_DICTIONARY, PLAIN_DICTIONARY) and
BYTE_STREAM_SPLIT encodings; uncompressed, snappy, gzip or zstd pages. Columns of other types
(text, dates, nested) are named, never decoded; a numeric column in an encoding not read here is
a NotParquet naming it. `ParquetColumns` has ArrowColumns' shape (onnxq/models/arrow_reader.py):
names, what is not a number, and per row group its rows and the chosen columns.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from onnxq.models import parquet_thrift as thrift
from onnxq.models.parquet_rle import RunsError, rle_pages, rle_values

MAGIC = b"PAR1"
# Parquet's physical types, and the numpy type of each numeric one.
BOOLEAN, INT32, INT64, INT96, FLOAT, DOUBLE, BYTE_ARRAY, FIXED = range(8)
_NUMPY = {INT32: "<i4", INT64: "<i8", FLOAT: "<f4", DOUBLE: "<f8"}
_UNSIGNED = {11: "<u4", 12: "<u4", 13: "<u4", 14: "<u8"}  # converted UINT_8 .. UINT_64
_TYPE_NAMES = {BOOLEAN: "boolean", INT96: "int96 timestamps", BYTE_ARRAY: "text or bytes",
               FIXED: "fixed-length bytes"}  # fmt: skip
_LOGICAL_NAMES = {1: "text", 5: "decimals", 6: "dates", 7: "times", 8: "timestamps", 14: "uuids"}
PLAIN, PLAIN_DICTIONARY, RLE, RLE_DICTIONARY, BYTE_STREAM_SPLIT = 0, 2, 3, 8, 9
DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 2, 3
UNCOMPRESSED, SNAPPY, GZIP, ZSTD = 0, 1, 2, 6


class NotParquet(ValueError):
    """Not a whole Parquet file, or one this reader does not read."""


def _decompress(codec: int, data: bytes | memoryview, size: int) -> bytes | memoryview:
    if codec == UNCOMPRESSED:
        return data
    if codec == SNAPPY:
        import pysnappy

        return pysnappy.uncompress(bytes(data))  # type: ignore[no-any-return]
    if codec == GZIP:
        return zlib.decompress(bytes(data), 31)
    if codec == ZSTD:
        from backports import zstd

        return zstd.decompress(bytes(data))
    raise NotParquet(
        f"pages compressed with codec {codec} are not read (write snappy, zstd or none)"
    )


class ParquetColumns:
    """A Parquet file's top-level columns and its row groups."""

    def __init__(self, data: bytes | mmap.mmap):
        self.data = data
        size = len(data)
        if size < 12 or bytes(data[:4]) != MAGIC or bytes(data[-4:]) != MAGIC:
            raise NotParquet("no PAR1 magic at its start and end")
        (length,) = struct.unpack_from("<I", data, size - 8)
        if length > size - 12:
            raise NotParquet("its footer is longer than the file")
        try:
            self.meta, _ = thrift.read_struct(memoryview(data)[size - 8 - length : size - 8])
        except thrift.ThriftError as exc:
            raise NotParquet(f"its footer cannot be read: {exc}") from None
        schema = self.meta.get(2, [])
        self.names: list[str] = []
        self._elements: list[dict[int, Any]] = []
        index = 1  # after the root, each top-level field and the children under it
        while index < len(schema):
            element = schema[index]
            self.names.append(element.get(4, b"").decode("utf-8", "replace"))
            self._elements.append(element)
            index += 1 + _descendants(schema, index)

    def not_number(self, index: int) -> str | None:
        """What the column is, when it is not numbers (None when it is)."""
        element = self._elements[index]
        if element.get(5):
            return "nested values"
        logical = element.get(10) or {}
        kind = next(iter(logical), None)
        if kind in _LOGICAL_NAMES:
            return _LOGICAL_NAMES[kind]
        physical = element.get(1)
        if physical == FIXED and kind == 15:  # FLOAT16
            return None
        if physical in _TYPE_NAMES and physical != BOOLEAN:
            return _TYPE_NAMES[physical]
        converted = element.get(6)
        if converted is not None and not 11 <= converted <= 18:
            return f"converted type {converted}"
        return None

    def batches(self, indexes: list[int]) -> Iterator[tuple[int, list[np.ndarray]]]:
        """(rows, the columns at `indexes`) of each row group."""
        for group in self.meta.get(4, []):
            rows = int(group.get(3, 0))
            chunks = {tuple(c.get(3, {}).get(3, [])): c.get(3, {}) for c in group.get(1, [])}
            columns = []
            for index in indexes:
                chunk = chunks.get((self.names[index].encode(),))
                if chunk is None:
                    raise NotParquet(f"a row group has no column {self.names[index]!r}")
                try:
                    columns.append(self._column(self._elements[index], chunk, rows))
                except RunsError as exc:
                    raise NotParquet(str(exc)) from None
            yield rows, columns

    def _column(self, element: dict[int, Any], chunk: dict[int, Any], rows: int) -> np.ndarray:
        physical, codec = element.get(1), chunk.get(4, UNCOMPRESSED)
        dtype = _value_type(element)
        optional = element.get(3) == 1
        at = chunk.get(11) if chunk.get(11) is not None else chunk.get(9, 0)
        end = at + chunk.get(7, 0)
        if at < 4 or end > len(self.data) - 8:
            raise NotParquet("a column chunk lies outside the file")
        dictionary, parts, valid_parts = None, [], []
        while at < end:
            try:
                header, at = thrift.read_struct(memoryview(self.data)[:end], at)
            except thrift.ThriftError as exc:
                raise NotParquet(f"a page header cannot be read: {exc}") from None
            size = header.get(3, 0)
            body = memoryview(self.data)[at : at + size]
            if len(body) < size:
                raise NotParquet("a page ends past its column chunk")
            at += size
            kind = header.get(1)
            if kind == DICTIONARY_PAGE:
                page = _decompress(codec, body, header.get(2, 0))
                dictionary = _plain(page, physical, dtype, header[7].get(1, 0))
            elif kind in (DATA_PAGE, DATA_PAGE_V2):
                values, valid = _data_page(header, body, codec, physical, dtype, optional,
                                           dictionary)  # fmt: skip
                parts.append(values)
                valid_parts.append(valid)
        lengths = [len(part) for part in parts]
        parts = _looked_up(parts, dictionary)
        values = (parts[0] if len(parts) == 1 else np.concatenate(parts) if parts
                  else np.empty(0, dtype))  # fmt: skip
        if not optional or all(v is None for v in valid_parts):
            if len(values) != rows:
                raise NotParquet(f"a column holds {len(values)} values for {rows} rows")
            return values
        valid = np.concatenate([v if v is not None else np.ones(n, bool)
                                for v, n in zip(valid_parts, lengths, strict=True)])  # fmt: skip
        if len(valid) != rows or int(valid.sum()) != len(values):
            raise NotParquet("a column's values do not match its rows")
        full = np.full(rows, np.nan)
        full[valid] = values
        return full


class _Indexes:
    """A dictionary page's indexes, not yet unpacked: a column's pages are unpacked together."""

    def __init__(self, width: int, data: Any, count: int):
        self.width, self.data, self.count = width, data, count

    def __len__(self) -> int:
        return self.count


def _looked_up(parts: list[Any], dictionary: np.ndarray | None) -> list[np.ndarray]:
    """The pages' values, each run of dictionary pages of one index width unpacked at once."""
    out: list[np.ndarray] = []
    at = 0
    while at < len(parts):
        if not isinstance(parts[at], _Indexes):
            out.append(parts[at])
            at += 1
            continue
        end = at
        while (
            end < len(parts)
            and isinstance(parts[end], _Indexes)
            and (parts[end].width == parts[at].width)
        ):
            end += 1
        indexes = rle_pages([(p.data, p.count) for p in parts[at:end]], parts[at].width)
        assert dictionary is not None  # checked as each page was read
        try:
            out.append(dictionary[indexes])
        except IndexError:
            raise NotParquet("a dictionary index past the dictionary") from None
        at = end
    return out


def _descendants(schema: list[dict[int, Any]], index: int) -> int:
    """How many schema elements lie under element `index` (its children, theirs, ...)."""
    count, pending = 0, schema[index].get(5, 0)
    while pending:
        count += 1
        pending += schema[index + count].get(5, 0) - 1
    return count


def _value_type(element: dict[int, Any]) -> np.dtype:
    physical = element.get(1)
    if physical == BOOLEAN:
        return np.dtype(np.uint8)
    if physical == FIXED:
        return np.dtype("<f2")
    converted = element.get(6)
    logical = (element.get(10) or {}).get(10)  # INTEGER {bitWidth, isSigned}
    if converted in _UNSIGNED or (logical is not None and logical.get(2) is False):
        return np.dtype("<u4" if physical == INT32 else "<u8")
    return np.dtype(_NUMPY[physical])


def _data_page(
    header: dict[int, Any], body: memoryview, codec: int, physical: int, dtype: np.dtype,
    optional: bool, dictionary: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """A data page's non-null values and (when it has levels) which rows hold one."""
    if header.get(1) == DATA_PAGE_V2:
        page = header[8]
        count, levels = page.get(1, 0), page.get(5, 0) + page.get(6, 0)
        level_bytes = body[page.get(6, 0) : levels]  # repetition levels first (none: flat)
        rest = body[levels:]
        data = _decompress(codec, rest, 0) if page.get(7, True) else rest
        valid = _levels(level_bytes, count) if optional and page.get(2, 1) else None
        encoding = page.get(4, PLAIN)
    else:
        page = header[5]
        count, encoding = page.get(1, 0), page.get(2, PLAIN)
        data = memoryview(_decompress(codec, body, header.get(2, 0)))
        valid = None
        if optional:  # definition levels: their length, then the RLE/bit-packed runs
            (size,) = struct.unpack_from("<I", data, 0)
            valid = _levels(data[4 : 4 + size], count)
            data = data[4 + size :]
    present = int(valid.sum()) if valid is not None else count
    if encoding in (PLAIN_DICTIONARY, RLE_DICTIONARY):
        if dictionary is None or not len(data):
            raise NotParquet("a dictionary-encoded page without its dictionary")
        # Decoded with the column's other dictionary pages, at once (_column).
        return _Indexes(data[0], data[1:], present), valid
    if encoding == PLAIN:
        return _plain(data, physical, dtype, present), valid
    if encoding == RLE and physical == BOOLEAN:  # v2 pages' booleans: a length, then runs
        (size,) = struct.unpack_from("<I", data, 0)
        return rle_values(data[4 : 4 + size], 1, present).astype(np.uint8), valid
    if encoding == BYTE_STREAM_SPLIT and physical in (FLOAT, DOUBLE, INT32, INT64):
        width = dtype.itemsize
        raw = np.frombuffer(data, np.uint8, present * width).reshape(width, present)
        return np.ascontiguousarray(raw.T).view(dtype).reshape(-1), valid
    raise NotParquet(f"a numeric column in encoding {encoding} (onnxq reads PLAIN, dictionary "
                     "and BYTE_STREAM_SPLIT pages)")  # fmt: skip


def _levels(data: Any, count: int) -> np.ndarray | None:
    """Which of a page's `count` rows hold a value (definition level 1); None when all do: a
    column with no nulls is one run of 1s, told from its first bytes."""
    if len(data) <= 6 and len(data) >= 2:
        header, at, shift = 0, 0, 0
        while at < len(data):
            header |= (data[at] & 0x7F) << shift
            shift, at = shift + 7, at + 1
            if not data[at - 1] & 0x80:
                break
        if not header & 1 and header >> 1 >= count and at < len(data) and data[at] == 1:
            return None
    return rle_values(data, 1, count).astype(bool)


def _plain(data: Any, physical: int, dtype: np.dtype, count: int) -> np.ndarray:
    if physical == BOOLEAN:
        bits = np.frombuffer(data, np.uint8, (count + 7) // 8)
        return np.unpackbits(bits, bitorder="little")[:count]
    if len(data) < count * dtype.itemsize:
        raise NotParquet("a page holds fewer values than it says")
    return np.frombuffer(data, dtype, count)
