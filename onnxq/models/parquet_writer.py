"""A result table as a Parquet file: one row group, one PLAIN page per column, uncompressed.

Results are a few columns of numbers (labels, probabilities, predictions) or text labels: what
any Parquet reader (pyarrow, pandas, polars, DuckDB, Spark) reads. Numbers keep their numpy type
(int64, float32, float64, ...), text is UTF-8 (BYTE_ARRAY with the STRING logical type); no
column has nulls, so none has definition levels.
"""

from __future__ import annotations

import struct

import numpy as np

from onnxq.models import parquet_thrift as thrift
from onnxq.models.parquet_reader import BYTE_ARRAY, DOUBLE, FLOAT, INT32, INT64, MAGIC
from onnxq.models.parquet_thrift import BINARY, I32, I64, LIST, STRUCT

PLAIN, RLE = 0, 3
# numpy kinds as (Parquet physical type, the numpy type its values are written as, INTEGER
# logical type (bit width, signed) or None).
_PHYSICAL = {
    np.dtype(np.float32): (FLOAT, "<f4", None), np.dtype(np.float64): (DOUBLE, "<f8", None),
    np.dtype(np.float16): (FLOAT, "<f4", None), np.dtype(np.int8): (INT32, "<i4", (8, True)),
    np.dtype(np.int16): (INT32, "<i4", (16, True)), np.dtype(np.int32): (INT32, "<i4", None),
    np.dtype(np.int64): (INT64, "<i8", None), np.dtype(np.uint8): (INT32, "<i4", (8, False)),
    np.dtype(np.uint16): (INT32, "<i4", (16, False)),
    np.dtype(np.uint32): (INT32, "<u4", (32, False)),
    np.dtype(np.uint64): (INT64, "<u8", (64, False)),
    np.dtype(np.bool_): (INT32, "<i4", (8, False)),
}  # fmt: skip


def _column(values: np.ndarray) -> tuple[int, bytes, list[tuple[int, int, object]]]:
    """(physical type, PLAIN page data, extra SchemaElement fields) of one column."""
    if values.dtype in _PHYSICAL:
        physical, as_type, integer = _PHYSICAL[values.dtype]
        extra: list[tuple[int, int, object]] = []
        if integer is not None:
            bits, signed = integer
            integer_type = [(1, thrift.BYTE, bits), (2, thrift.BOOL_TRUE, signed)]
            extra.append((10, STRUCT, [(10, STRUCT, integer_type)]))  # LogicalType INTEGER
        return physical, np.ascontiguousarray(values, dtype=as_type).tobytes(), extra
    encoded = [str(value).encode() for value in values.tolist()]
    data = b"".join(struct.pack("<I", len(e)) + e for e in encoded)
    return BYTE_ARRAY, data, [(6, I32, 0), (10, STRUCT, [(1, STRUCT, [])])]  # UTF8, STRING


def parquet_bytes(columns: dict[str, np.ndarray]) -> bytes:
    """The table as a Parquet file."""
    rows = len(next(iter(columns.values()))) if columns else 0
    out = bytearray(MAGIC)
    schema = [[(4, BINARY, "schema"), (5, I32, len(columns))]]
    chunks, total = [], 0
    for name, values in columns.items():
        physical, data, extra = _column(np.asarray(values))
        page = thrift.write_struct([
            (1, I32, 0), (2, I32, len(data)), (3, I32, len(data)),
            (5, STRUCT, [(1, I32, rows), (2, I32, PLAIN), (3, I32, RLE), (4, I32, RLE)]),
        ])  # fmt: skip
        at = len(out)
        out += page + data
        size = len(page) + len(data)
        total += size
        meta = [(1, I32, physical), (2, LIST, (I32, [PLAIN, RLE])), (3, LIST, (BINARY, [name])),
                (4, I32, 0), (5, I64, rows), (6, I64, size), (7, I64, size),
                (9, I64, at)]  # fmt: skip
        chunks.append([(2, I64, at), (3, STRUCT, meta)])
        schema.append(sorted([(1, I32, physical), (3, I32, 0), (4, BINARY, name), *extra]))
    footer = thrift.write_struct([
        (1, I32, 1),
        (2, LIST, (STRUCT, schema)),
        (3, I64, rows),
        (4, LIST, (STRUCT, [[(1, LIST, (STRUCT, chunks)), (2, I64, total), (3, I64, rows)]])),
        (6, BINARY, "onnxq"),
    ])  # fmt: skip
    out += footer + struct.pack("<I", len(footer)) + MAGIC
    return bytes(out)
