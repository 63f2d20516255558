"""Prediction-log lines for a whole batch at once, byte for byte what orjson writes per line.

A line per row, each `orjson.dumps` of a dict, was a third of a 1,000-row request's CPU. The lines
of a batch share everything but the row number, the features and the outputs; those come from
one `orjson.dumps` per column (the whole features matrix, all labels, all probabilities), split
into rows where rows meet (`column`); a column that does not split cleanly (a label "a,b", a
tensor model's outputs) is written value by value, and a batch of a few rows line by line, which
is then faster. The key order is PredictionLog's, which drift/log_lines.py's fast reader relies
on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from typing import Any

import numpy as np
import orjson

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
# Fewer rows than this are written line by line: splitting pays from a handful of rows on.
BULK_ROWS = 8


def encode_lines(
    *,
    timestamp: str,
    source: str,
    request_id: str | None,
    job_id: str | None,
    model: str,
    version: int,
    rows: int,
    matrix: np.ndarray | None,
    columns: Sequence[tuple[str, Sequence[Any]]],
    latency_ms: float,
) -> bytes:
    """The newline-terminated lines of `rows` rows (`matrix`: float32 features, or None)."""
    # What every line of the batch says first, in the log's key order.
    shared = {
        "ts": timestamp,
        "source": source,
        "request_id": request_id,
        "job_id": job_id,
        "model": model,
        "version": version,
    }
    latency = round(latency_ms, 3)
    if rows < BULK_ROWS:
        return _line_by_line(shared, rows, matrix, columns, latency)
    head = b"{" + b",".join(b'"%s":%s' % (k.encode(), orjson.dumps(v)) for k, v in shared.items())
    head += b',"row":'
    if matrix is None:
        fields = [("features", [b"null"] * rows, False)]
    else:
        fields = [("features", *column(np.ascontiguousarray(matrix)))]
    fields += [(key, *column(values)) for key, values in columns]
    # The bytes between two values: the previous field's closing bracket, the next one's name
    # and opening bracket; each line is then head, row, and value and separator by turns.
    separators, closing = [], b""
    for key, parts, bracketed in fields:
        if len(parts) != rows:
            raise ValueError(f"{key}: {len(parts)} values for {rows} rows")
        separators.append(closing + b',"' + key.encode() + b'":' + (b"[" if bracketed else b""))
        closing = b"]" if bracketed else b""
    tail = closing + b',"latency_ms":' + orjson.dumps(latency) + b"}\n"
    streams: list[Iterable[bytes]] = [repeat(head), [b"%d" % index for index in range(rows)]]
    for separator, (_, parts, _) in zip(separators, fields, strict=True):
        streams += [repeat(separator), parts]
    streams.append(repeat(tail))
    # Not strict: the repeats are endless; every list has `rows` items (checked above).
    return b"".join(chain.from_iterable(zip(*streams, strict=False)))


def _line_by_line(
    shared: dict[str, Any],
    rows: int,
    matrix: np.ndarray | None,
    columns: Sequence[tuple[str, Sequence[Any]]],
    latency: float,
) -> bytes:
    lines = []
    for index in range(rows):
        line = {**shared, "row": index, "features": None if matrix is None else matrix[index]}
        for key, values in columns:
            line[key] = values[index]
        line["latency_ms"] = latency
        lines.append(orjson.dumps(line, option=_NUMPY | orjson.OPT_APPEND_NEWLINE))
    return b"".join(lines)


def column(values: Sequence[Any] | np.ndarray) -> tuple[list[bytes], bool]:
    """Each value of a column as orjson writes it alone, from one dumps where the shape allows:
    (parts, bracketed). Bracketed parts are rows of a list without their brackets.

    The one dumps is split where values meet (`],[` between lists, `,` between scalars); when
    that gives exactly one part per value, each part is that value's own encoding (each value
    gives at least one part). A value holding the separator (a string label "a,b") makes more
    parts, and the column is then written value by value.
    """
    encoded = orjson.dumps(values, option=_NUMPY)
    if not len(values):
        return [], False
    first = values[0]
    if isinstance(first, list | np.ndarray):
        inner = encoded[2:-2].split(b"],[")
        if len(inner) == len(values):
            return inner, True
    elif not isinstance(first, dict):
        parts = encoded[1:-1].split(b",")
        if len(parts) == len(values):
            return parts, False
    return [orjson.dumps(value, option=_NUMPY) for value in values], False


def row_values(values: Sequence[Any]) -> list[bytes]:
    """Each value of a column as orjson writes it alone (column(), with the brackets)."""
    parts, bracketed = column(values)
    return [b"[" + part + b"]" for part in parts] if bracketed else parts
