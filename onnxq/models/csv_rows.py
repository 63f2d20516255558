"""A CSV body's rows: a header row of column names, then one row per line (RFC 4180 quoting).

Each feature's column is parsed by numpy at once; a column that does not parse is looked at value
by value, so that every cell that is not a number is a problem at its row and feature. An empty
cell is a missing value (NaN), which the checks of onnxq/models/file_inputs.py allow only where the
feature is nullable.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from onnxq.errors import InvalidInput

MAX_LISTED = 100


def csv_table(data: bytes) -> tuple[list[str], list[list[str]]]:
    """A CSV body's header and rows (blank lines skipped); a 422 for what is not CSV text."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("a CSV body must be UTF-8 text",
                           [{"loc": ["body"], "message": str(exc)}]) from None  # fmt: skip
    try:
        lines = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise InvalidInput(f"the body is not CSV: {exc}",
                           [{"loc": ["body"], "message": str(exc)}]) from None  # fmt: skip
    if not lines or not any(lines[0]):
        raise InvalidInput("a CSV body starts with a header row of column names",
                           [{"loc": ["body"], "message": "no header row"}])  # fmt: skip
    return [name.strip() for name in lines[0]], [row for row in lines[1:] if row]


def csv_columns(
    header: list[str], rows: list[list[str]], features: list[str]
) -> tuple[np.ndarray, int, list[dict[str, Any]]]:
    """The features' columns in manifest order as float64 (empty cells NaN), the number of cells
    that are not numbers, and the first MAX_LISTED of them as problems."""
    cells = list(zip(*rows, strict=True))
    matrix = np.empty((len(rows), len(features)), dtype=np.float64)
    problems: list[dict[str, Any]] = []
    count = 0
    for column, feature in enumerate(features):
        values, bad = _numbers(cells[header.index(feature)])
        matrix[:, column] = values
        count += len(bad)
        for row, cell in bad[: max(0, MAX_LISTED - len(problems))]:
            problems.append({"loc": ["rows", row, feature], "row": row, "feature": feature,
                             "message": f"expected a number, got {cell!r}"})  # fmt: skip
    return matrix, count, problems


def _numbers(cells: tuple[str, ...]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """A column's cells as float64 (empty: NaN), and the (row, cell) of those not numbers."""
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
            values[row] = np.nan
    return values, bad
