"""A CSV body's rows: a header row of column names, then one row per line (RFC 4180 quoting).

The body is read CHUNK_ROWS rows at a time (a million rows as Python strings would take
gigabytes): each chunk's feature columns are parsed by numpy at once, and a column that does not
parse is looked at value by value, so that every cell that is not a number is a problem at its
row and feature. An empty cell is a missing value (NaN), which the checks of
onnxq/models/file_inputs.py allow only where the feature is nullable.
"""

from __future__ import annotations

import csv
import io
import mmap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxq.errors import InvalidInput

MAX_LISTED = 100
CHUNK_ROWS = 50_000


@dataclass
class Problems:
    """Problems found in a file: all of them counted, the first MAX_LISTED kept."""

    count: int = 0
    listed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, detail: dict[str, Any]) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(detail)

    def raise_any(self, where: str) -> None:
        if self.count:
            more = "" if self.count <= MAX_LISTED else f"; the first {MAX_LISTED} are listed"
            raise InvalidInput(f"{self.count} problem(s) {where}{more}", self.listed)


def _lines(data: bytes | mmap.mmap) -> Iterator[str]:
    """The body's lines as text, one at a time (a BOM before the header left out)."""
    source = data if isinstance(data, mmap.mmap) else io.BytesIO(data)
    for number, raw in enumerate(iter(source.readline, b""), start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            detail = {"loc": ["body"], "line": number, "message": str(exc)}
            raise InvalidInput("a CSV body must be UTF-8 text", [detail]) from None


class CsvTable:
    """A CSV body: its header now, its rows in chunks (blank lines skipped)."""

    def __init__(self, data: bytes | mmap.mmap):
        self._reader = csv.reader(_lines(data), strict=True)
        header = self._next()
        if header is None or not any(header):
            raise InvalidInput("a CSV body starts with a header row of column names",
                               [{"loc": ["body"], "message": "no header row"}])  # fmt: skip
        self.header = [name.strip() for name in header]

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except csv.Error as exc:
            raise InvalidInput(f"the body is not CSV: {exc}",
                               [{"loc": ["body"], "message": str(exc)}]) from None  # fmt: skip

    def chunks(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, list[list[str]]]]:
        """(first row's number, rows) of up to `chunk_rows` rows at a time."""
        start, rows = 0, []
        while (row := self._next()) is not None:
            if not row:
                continue
            rows.append(row)
            if len(rows) == chunk_rows:
                yield start, rows
                start, rows = start + len(rows), []
        if rows:
            yield start, rows


def csv_columns(
    header: list[str], rows: list[list[str]], features: list[str], first_row: int,
    problems: Problems,
) -> np.ndarray:  # fmt: skip
    """The features' columns of a chunk of rows in manifest order as float64 (empty cells NaN);
    each row of the wrong length (read as zeros past its end: a problem once, not per cell) and
    each cell that is not a number a problem."""
    width = len(header)
    for i, row in enumerate(rows):
        if len(row) != width:
            problems.add({"loc": ["rows", first_row + i], "row": first_row + i,
                          "message": f"expected {width} cells, got {len(row)}"})  # fmt: skip
            rows[i] = (row + ["0"] * width)[:width]
    cells = list(zip(*rows, strict=True))
    matrix = np.empty((len(rows), len(features)), dtype=np.float64)
    for column, feature in enumerate(features):
        values, bad = _numbers(cells[header.index(feature)])
        matrix[:, column] = values
        for row, cell in bad:
            message = f"expected a number, got {cell!r}"
            problems.add({"loc": ["rows", first_row + row, feature], "row": first_row + row,
                          "feature": feature, "message": message})  # fmt: skip
    return matrix


def _numbers(cells: tuple[str, ...]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """A column's cells as float64 (empty: NaN), and the (row, cell) of those not numbers (read
    as 0)."""
    try:
        return np.array(cells, dtype=np.float64), []
    except ValueError:
        pass
    values = np.empty(len(cells), dtype=np.float64)
    bad: list[tuple[int, str]] = []
    for row, cell in enumerate(cells):
        text = cell.strip()
        if not text:
            values[row] = np.nan
            continue
        try:
            values[row] = float(text)
        except ValueError:
            bad.append((row, cell))
            values[row] = 0.0  # a problem already: not a missing value as well
    return values, bad
