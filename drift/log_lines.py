"""The log reader's fast path: a block of lines in PredictionLog's own layout, parsed at once.

`orjson.loads` per line, then a DataFrame of Python lists, costs ~10 µs a row; 1,000,000 rows would
take more than a minute. Lines written by onnxq's PredictionLog (onnxq/telemetry/) always have the
same key order, so one regular expression over the whole block picks out each line's ts, model,
version, features, label and last probability, and pandas' C CSV parser turns all the feature lists
into one float matrix. Anything unexpected - a line of another layout, a corrupt or truncated line,
a value that is not a number - makes `parse_block` return None, and the caller reads that block line
by line with orjson instead (drift/log_reader.py), so both paths count exactly the same rows."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd

_STRING = rb'"[^"\\\n]*"'  # no escapes: a string with one takes the general path
LINE = re.compile(
    rb'^\{"ts":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)","source":'
    + _STRING
    + rb',"request_id":(?:null|'
    + _STRING
    + rb'),"job_id":(null|'
    + _STRING
    + rb'),"model":"([^"\\\n]*)","version":(-?\d+),"row":(\d+),"features":\[([-+0-9.,eEnul]*)\]'
    + rb',"label":('
    + _STRING
    + rb'|[^,\n"]*),"probabilities":\[(?:[^\]\n"]*,)?([^,\]\n"]*)\]'
    + rb',"latency_ms":[^,}\n"]*\}$',
    re.MULTILINE,
)


def timestamp_bytes(when: datetime) -> bytes:
    """``when`` in PredictionLog's timestamp format (UTC, milliseconds)."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()


@dataclass
class ParsedBlock:
    """The rows of one block that count, as arrays, and how many were outside the window."""

    features: np.ndarray  # rows x width, float64
    probabilities: np.ndarray  # last-class probability per row, NaN when absent
    labels: list[Any]
    outside_window: int = 0
    duplicates: int = 0  # lines of a (job, row) already counted: a job run twice
    values: list[list[Any]] = field(default_factory=list)  # each profile value's column


def parse_block(
    block: bytes,
    lines: int,
    model: str,
    version: int | None,
    start: datetime,
    end: datetime,
    width: int,
    seen: set[bytes] | None = None,
) -> ParsedBlock | None:
    """Parse a block of ``lines`` non-empty lines, or return None if any is not in the layout.

    ``seen`` holds the (job, row) keys counted so far (job_key); a line whose key is in it is a
    second run of that job's row (at-least-once delivery) and is left out, a new key is added.
    """
    matches = LINE.findall(block)
    if len(matches) != lines:
        return None
    # The window in the log's timestamp format: ceil the start and floor the end to the
    # millisecond, so that comparing bytes gives the same answer as comparing datetimes.
    low = timestamp_bytes(start + timedelta(microseconds=(-start.microsecond) % 1000))
    high = timestamp_bytes(end)
    empty = ParsedBlock(np.empty((0, width)), np.empty(0), [])
    if not matches:
        return empty
    stamps, job_ids, names, versions, row_numbers, values, labels, probabilities = zip(
        *matches, strict=True
    )
    model_bytes = model.encode()
    version_bytes = None if version is None else str(version).encode()
    everyone = names.count(model_bytes) == len(names) and (
        version_bytes is None or versions.count(version_bytes) == len(versions)
    )
    if everyone and low <= min(stamps) and max(stamps) <= high:
        keep = np.arange(len(matches))  # the usual block: one model, inside the window
    else:
        ours = np.array(names) == model_bytes
        if version_bytes is not None:
            ours &= np.array(versions) == version_bytes
        stamp_array = np.array(stamps)
        inside = (stamp_array >= low) & (stamp_array <= high)
        keep = np.flatnonzero(ours & inside)
        empty.outside_window = int((ours & ~inside).sum())
    if seen is not None and job_ids.count(b"null") != len(job_ids):
        first = [i for i in keep if _first_time(seen, job_ids[i], row_numbers[i])]
        empty.duplicates = keep.size - len(first)
        keep = np.array(first, dtype=np.intp)
    if keep.size == 0:
        return empty
    if keep.size < len(matches):
        values = tuple(values[i] for i in keep)
        labels = tuple(labels[i] for i in keep)
        probabilities = tuple(probabilities[i] for i in keep)
    joined = b"\n".join(values)
    if joined.count(b",") != keep.size * (width - 1):
        return None  # a row of another width: the general path counts it as mismatched
    try:
        matrix = pd.read_csv(
            io.BytesIO(joined),
            header=None,
            names=range(width),
            dtype=np.float64,
            na_values=["null"],
            keep_default_na=False,
            engine="c",
        ).to_numpy()
    except (ValueError, pd.errors.ParserError):
        return None
    # An empty field ("1,,2"), or a short row next to a long one, reads as NaN where orjson would
    # refuse the line or the general path count a mismatched width: every NaN must be a null.
    if matrix.shape != (keep.size, width) or np.isnan(matrix).sum() != joined.count(b"null"):
        return None
    try:
        if b"null" in probabilities or b"" in probabilities:
            probabilities = tuple(p if p and p != b"null" else b"nan" for p in probabilities)
        numbers = np.array(probabilities).astype(np.float64)
        decoded = {label: orjson.loads(label) for label in set(labels)}
    except (ValueError, orjson.JSONDecodeError):
        return None
    # Labels are few distinct values: decode each once, map the rest.
    codes, distinct = pd.factorize(np.array(labels, dtype=object))
    label_values = np.array([decoded[label] for label in distinct] + [None], dtype=object)
    return ParsedBlock(
        features=matrix,
        probabilities=numbers,
        labels=list(label_values[codes]),
        outside_window=empty.outside_window,
        duplicates=empty.duplicates,
    )


def job_key(job_id: bytes | str, row: bytes | int) -> bytes:
    """The key of one job row, the same from the fast path's bytes and a decoded line."""
    job = job_id.encode() if isinstance(job_id, str) else job_id.strip(b'"')
    return job + b"/" + (str(row).encode() if isinstance(row, int) else row)


def _first_time(seen: set[bytes], job_id: bytes, row: bytes) -> bool:
    if job_id == b"null":
        return True  # a synchronous prediction: logged once by the request that made it
    key = job_key(job_id, row)
    if key in seen:
        return False
    seen.add(key)
    return True
