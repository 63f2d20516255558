"""Prediction-log lines for a whole batch at once, byte for byte what orjson writes per line.

A line per row, each `orjson.dumps` of a dict, was a third of a 1,000-row request's CPU. The lines
of a batch share everything but the row number, the features and the outputs; those come from
one `orjson.dumps` per column (the whole features matrix, all labels, all probabilities), split
into rows where rows meet (`],[` between rows of numbers, `,` between numbers). What is not a
flat number or row of numbers (a string label, a tensor model's outputs) is written per row; a
batch of a few rows is written line by line, which is then faster. The
key order is PredictionLog's, which drift/log_lines.py's fast reader relies on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from typing import Any

import numpy as np
import orjson

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_NUMBER = (int, float)
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
    if rows < BULK_ROWS:
        return _line_by_line(
            timestamp, source, request_id, job_id, model, version, rows, matrix, columns,
            latency_ms,
        )  # fmt: skip
    head = b"".join(
        [
            b'{"ts":',
            orjson.dumps(timestamp),
            b',"source":',
            orjson.dumps(source),
            b',"request_id":',
            orjson.dumps(request_id),
            b',"job_id":',
            orjson.dumps(job_id),
            b',"model":',
            orjson.dumps(model),
            b',"version":',
            orjson.dumps(version),
            b',"row":',
        ]
    )
    features = [b"null"] * rows if matrix is None else _matrix_rows(matrix)
    tail = b',"latency_ms":' + orjson.dumps(round(latency_ms, 3)) + b"}\n"
    # One join over every piece of every line: head, row number, then name and value of each
    # field, then the tail (a join per line cost as much as the encoding).
    streams: list[Iterable[bytes]] = [repeat(head), [b"%d" % index for index in range(rows)]]
    streams += [repeat(b',"features":'), features]
    for key, values in columns:
        encoded = row_values(values)
        if len(encoded) != rows:
            raise ValueError(f"{key}: {len(encoded)} values for {rows} rows")
        streams += [repeat(b',"' + key.encode() + b'":'), encoded]
    streams.append(repeat(tail))
    # Not strict: the repeats are endless; every list has `rows` items (checked above).
    return b"".join(chain.from_iterable(zip(*streams, strict=False)))


def _line_by_line(
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
    lines = []
    for index in range(rows):
        line = {
            "ts": timestamp,
            "source": source,
            "request_id": request_id,
            "job_id": job_id,
            "model": model,
            "version": version,
            "row": index,
            "features": None if matrix is None else matrix[index],
        }
        for key, values in columns:
            line[key] = values[index]
        line["latency_ms"] = round(latency_ms, 3)
        lines.append(orjson.dumps(line, option=_NUMPY | orjson.OPT_APPEND_NEWLINE))
    return b"".join(lines)


def _matrix_rows(matrix: np.ndarray) -> list[bytes]:
    """Each row of a 2-D numeric array as orjson writes it alone."""
    return split_rows(orjson.dumps(np.ascontiguousarray(matrix), option=_NUMPY), len(matrix))


def split_rows(encoded: bytes, rows: int) -> list[bytes]:
    """`[[a,b],[c,d]]` -> [b"[a,b]", b"[c,d]"]: rows of numbers (or null) hold no `],[`."""
    inner = encoded[2:-2].split(b"],[")
    if len(inner) != rows:
        raise ValueError("not a list of rows of numbers")
    return [b"[" + row + b"]" for row in inner]


def row_values(values: Sequence[Any]) -> list[bytes]:
    """Each value of a column as orjson writes it alone, in one dumps where the shape allows."""
    first = values[0] if len(values) else None
    if isinstance(first, list) and all(type(v) in _NUMBER or v is None for v in first):
        try:
            return split_rows(orjson.dumps(values), len(values))
        except ValueError:
            pass
    elif type(first) in _NUMBER and all(type(v) in _NUMBER for v in values):
        return orjson.dumps(values)[1:-1].split(b",")
    elif isinstance(first, str) and all(isinstance(v, str) for v in values):
        written = {value: orjson.dumps(value) for value in set(values)}  # labels: a few classes
        return [written[value] for value in values]
    return [orjson.dumps(value, option=_NUMPY) for value in values]
