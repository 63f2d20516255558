"""A job's rows sent as a file (Parquet, Arrow stream, CSV, .npy) as the model's float32 matrix.

- `application/vnd.apache.parquet` (onnxq/models/parquet_reader.py) and
  `application/vnd.apache.arrow.stream` (onnxq/models/arrow_reader.py): columns are matched to
  the manifest's features by name (any order); a missing feature is a 422 naming it, an extra
  column a 422 listing them unless `extra="ignore"`; integer, float and boolean columns are cast
  to float32, any other type (text, dates, lists) is a 422 naming the column and its type.
- `text/csv`: a header row of column names, matched like an Arrow stream's columns
  (onnxq/models/csv_rows.py).
- `application/x-npy`: a 2-D numeric array in manifest feature order (never pickled objects).

The values are then checked with the JSON rows' rules (onnxq/models/inputs.py): a value must be
finite, within float32's range, and present unless its feature is nullable (NaN or an Arrow null
is then a missing value). Problems are listed by row and feature, the first MAX_LISTED of them,
with their count.
"""

from __future__ import annotations

import io
import mmap
from collections.abc import Callable
from typing import Any

import numpy as np

from onnxq.errors import InvalidInput, UnsupportedFile
from onnxq.models.arrow_reader import ArrowColumns, NotArrow
from onnxq.models.csv_rows import MAX_LISTED, CsvTable, Problems, csv_columns
from onnxq.models.manifest import Manifest
from onnxq.models.parquet_reader import NotParquet, ParquetColumns

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
NPY = "application/x-npy"
CSV = "text/csv"
FILE_TYPES = (PARQUET, ARROW_STREAM, NPY, CSV)
ROW_BLOCK = 16_384  # rows of a file checked and handed on at a time (2 MB of 30 features)


# Where a file's checked rows go: float32 blocks of the model's features, in order (a block's
# array is reused for the next one: what is kept must be copied).
RowSink = Callable[[np.ndarray], object]


def file_rows(
    kind: str, data: bytes | mmap.mmap, manifest: Manifest, sink: RowSink, extra: str = "reject"
) -> int:
    """Check the rows of a file body of media type `kind` for a tabular model (`data`: its
    bytes, or the blob store's map of them) and hand them to `sink` a block at a time, never as
    one more copy of the whole; how many rows it had. A file with problems raises InvalidInput
    (after `sink` had the blocks before the first one)."""
    if not manifest.tabular:
        raise UnsupportedFile(f"{manifest.name} is a tensor model: send its rows as JSON")
    if not len(data):
        raise InvalidInput("the file is empty", [{"loc": ["body"], "message": "no bytes"}])
    problems = Problems()
    if kind in (ARROW_STREAM, PARQUET):
        rows = _table_rows(kind, data, manifest, extra, sink, problems)
    elif kind == CSV:
        rows = _csv_rows(data, manifest, extra, sink, problems)
    else:
        rows = _npy_rows(_npy(data, manifest), manifest, sink, problems)
    problems.raise_any("in the file's rows")
    return rows


def _npy_rows(array: np.ndarray, manifest: Manifest, sink: RowSink, problems: Problems) -> int:
    for first in range(0, len(array), ROW_BLOCK):
        block = checked_rows(array[first : first + ROW_BLOCK], manifest, first, problems)
        if not problems.count:
            sink(block)
    return len(array)


def _npy(data: bytes | mmap.mmap, manifest: Manifest) -> np.ndarray:
    try:
        array = _npy_array(data)
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidInput(f"the body is not a .npy array: {exc}",
                           [{"loc": ["body"], "message": str(exc)}]) from None  # fmt: skip
    width = len(manifest.features)
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] != width:
        shape = getattr(array, "shape", None)
        raise InvalidInput(
            f"a .npy body must be a 2-D array of {width} columns in feature order, not {shape}",
            [{"loc": ["body"], "message": f"shape {shape}"}],
        )
    if array.dtype.kind not in "biuf":
        raise InvalidInput(f"a .npy body must hold numbers, not {array.dtype}",
                           [{"loc": ["body"], "message": f"dtype {array.dtype}"}])  # fmt: skip
    return array


def _npy_array(data: bytes | mmap.mmap) -> np.ndarray:
    """The array of a .npy body, its data read in place (np.load would copy 120 MB a million
    rows); an object array (which would need pickle) or a short body is a ValueError."""
    # The header only (format 1.0 and 2.0 say its length in their first 12 bytes).
    lead = bytes(data[:12])
    sizes = {b"\x01": 10 + int.from_bytes(lead[8:10], "little"),
             b"\x02": 12 + int.from_bytes(lead[8:12], "little")}  # fmt: skip
    source = io.BytesIO(bytes(data[: sizes.get(lead[6:7], 12)]))
    version = np.lib.format.read_magic(source)
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}  # fmt: skip
    if version not in readers:  # format 3.0 (a UTF-8 header): numpy's own reader, a copy
        return np.load(io.BytesIO(bytes(data)), allow_pickle=False)  # type: ignore[no-any-return]
    shape, fortran, dtype = readers[version](source)
    if dtype.hasobject:
        raise ValueError("an array of Python objects (pickled) is not taken")
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) - source.tell() < count * dtype.itemsize:
        raise ValueError(f"the body ends before its {count} values")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=source.tell())
    return flat.reshape(shape, order="F" if fortran else "C")


def _table_rows(
    kind: str, data: bytes | mmap.mmap, manifest: Manifest, extra: str, sink: RowSink,
    problems: Problems,
) -> int:  # fmt: skip
    """An Arrow stream's or a Parquet file's columns by name, a batch (row group) at a time."""
    what = "a whole Arrow IPC stream" if kind == ARROW_STREAM else "a Parquet file onnxq reads"
    width = len(manifest.features)
    block = np.empty((ROW_BLOCK, width), dtype=np.float32)
    start = 0
    try:
        table = ArrowColumns(data) if kind == ARROW_STREAM else ParquetColumns(data)
        names = table.names
        features = manifest.feature_names
        details = column_problems(names, features, extra)
        for feature in (f for f in features if f in names):
            problem = table.not_number(names.index(feature))
            if problem is not None:
                details.append({"loc": ["columns", feature], "feature": feature,
                                "message": f"a column of {problem}, not numbers"})  # fmt: skip
        if details:
            raise InvalidInput(f"{len(details)} problem(s) with the file's columns", details)
        for rows, columns in table.batches([names.index(feature) for feature in features]):
            # A block of rows at a time, each column cast as it is copied: the block stays in
            # cache while it is filled, checked and handed on.
            for first in range(0, rows, ROW_BLOCK):
                part = block[: min(ROW_BLOCK, rows - first)]
                with np.errstate(over="ignore", invalid="ignore"):  # beyond float32's range: inf
                    for index, column in enumerate(columns):
                        part[:, index] = column[first : first + len(part)]
                check_matrix(part, manifest, start + first, problems,
                             lambda r, c, x=columns, f=first: float(x[c][f + r]))  # fmt: skip
                if not problems.count:
                    sink(part)
            start += rows
    except (NotArrow, NotParquet) as exc:
        raise InvalidInput(f"the body is not {what}: {exc}",
                           [{"loc": ["body"], "message": str(exc)}]) from None  # fmt: skip
    return start


def _csv_rows(
    data: bytes | mmap.mmap, manifest: Manifest, extra: str, sink: RowSink, problems: Problems
) -> int:
    table = CsvTable(data)
    features = manifest.feature_names
    details = column_problems(table.header, features, extra)
    if details:
        raise InvalidInput(f"{len(details)} problem(s) with the file's columns", details)
    count = 0
    for start, rows in table.chunks():
        values = csv_columns(table.header, rows, features, start, problems)
        block = checked_rows(values, manifest, start, problems)
        if not problems.count:
            sink(block)
        count = start + len(rows)
    if not count:
        raise InvalidInput("the CSV body has no rows", [{"loc": ["body"], "message": "no rows"}])
    return count


def column_problems(names: list[str], features: list[str], extra: str) -> list[dict[str, Any]]:
    """A file's columns against the model's features: each missing one, and each extra one
    unless `extra` is "ignore"."""
    details = [{"loc": ["columns", f], "feature": f, "message": "missing column"}
               for f in features if f not in names]  # fmt: skip
    if extra != "ignore":
        unknown = "not a feature of the model (send ?extra=ignore to leave it out)"
        details += [{"loc": ["columns", n], "message": unknown} for n in names if n not in features]
    return details


def checked_rows(
    values: np.ndarray, manifest: Manifest, first_row: int, problems: Problems
) -> np.ndarray:
    """`values` (rows numbered from `first_row`) as float32 after the JSON rows' checks
    (check_matrix)."""
    with np.errstate(over="ignore", invalid="ignore"):
        # A float64 beyond float32's range becomes +-inf here, and is refused below.
        matrix = np.ascontiguousarray(values, dtype=np.float32)
    check_matrix(matrix, manifest, first_row, problems, lambda r, c: float(values[r, c]))
    return matrix


def check_matrix(
    matrix: np.ndarray,
    manifest: Manifest,
    first_row: int,
    problems: Problems,
    original: Callable[[int, int], float],
) -> None:
    """The JSON rows' checks of a float32 matrix: finite, in float32's range (`original` gives
    the value a cell was cast from, to tell which), and present where the feature is not
    nullable; each bad value a problem."""
    finite = np.isfinite(matrix)
    if finite.all():  # the usual file: one pass over its float32 values
        return
    nullable = np.array([f.nullable for f in manifest.features])
    bad = ~finite & ~(np.isnan(matrix) & nullable)
    positions = np.argwhere(bad)
    room = max(0, MAX_LISTED - len(problems.listed))
    problems.count += max(0, len(positions) - room)  # counted, not described
    for row, column in positions[:room].tolist():
        feature = manifest.features[column].name
        value = original(row, column)
        message = ("expected a number, got a missing value" if np.isnan(value) else
                   "expected a finite number, got Infinity" if np.isinf(value) else
                   "value is outside the float32 range")  # fmt: skip
        problems.add({"loc": ["rows", first_row + row, feature], "row": first_row + row,
                      "feature": feature, "message": message})  # fmt: skip
