"""The drift window's rows from the prediction log's segments (drift/log_segments.py): each
record batch's rows inside the window, of jobs not counted before, as a ParsedBlock to bin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from drift.log_lines import ParsedBlock
from drift.log_segments import OUTPUTS, PREDICTION, LoggedRows, stream_segment
from drift.outputs import value_at

if TYPE_CHECKING:
    from drift.log_reader import WindowCounts


def count_segments(
    result: WindowCounts,
    root: Path,
    segments: list[Path],
    width: int,
    progress: Callable[[int], None],
) -> None:
    """Bin the rows of `segments` inside the result's window into its counts."""
    result.files += [str(path.relative_to(root)) for path in segments]
    window = (_milliseconds(result.start, up=True), _milliseconds(result.end))
    seen: dict[str, np.ndarray] = {}
    for parsed, batch in window_blocks(segments, *window, result.paths, seen, progress):
        if parsed is None or batch is None:
            result.corrupt_lines += 1  # a segment cut short: its last batch is lost
        elif batch.features is not None and batch.features.shape[1] != width:
            result.mismatched_lines += len(batch)
        else:
            result.add_parsed(parsed)


def _milliseconds(when: datetime, up: bool = False) -> int:
    """`when` as the log's epoch milliseconds: the window's start rounded up, its end down, so
    that a row logged at a millisecond is inside exactly when its time is."""
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -(-micros // 1000) if up else micros // 1000


def window_blocks(
    paths: list[Path],
    start_ms: int,
    end_ms: int,
    value_paths: list[list[str | int]],
    seen: dict[str, np.ndarray],
    progress: Any = None,
) -> Iterator[tuple[ParsedBlock | None, LoggedRows | None]]:
    """The rows of the segments' batches inside [start_ms, end_ms] as ParsedBlocks (what the
    log reader bins), a batch at a time; (None, None) marks a segment cut short.

    `seen` holds, per job, which of its rows were counted already: a job run twice (at-least-once
    delivery) logged its rows twice, and the second time they are left out and counted as
    duplicates. `progress(bytes)` is called after each segment.
    """
    for path in paths:
        for batch in stream_segment(path):
            if batch is None:
                yield None, None
            else:
                yield _block(batch, start_ms, end_ms, value_paths, seen), batch
        if progress is not None:
            progress(path.stat().st_size)


def _block(
    batch: LoggedRows,
    start_ms: int,
    end_ms: int,
    value_paths: list[list[str | int]],
    seen: dict[str, np.ndarray],
) -> ParsedBlock:
    inside = (batch.ts_ms >= start_ms) & (batch.ts_ms <= end_ms)
    outside = int(len(batch) - inside.sum())
    keep = inside
    duplicates = 0
    if any(job is not None for job in batch.job_id):
        first = np.array([_first_time(seen, job, row) for job, row in
                          zip(batch.job_id, batch.row.tolist(), strict=True)])  # fmt: skip
        duplicates = int((inside & ~first).sum())
        keep = inside & first
    index = np.flatnonzero(keep)
    features = batch.features[index] if batch.features is not None else np.empty((len(index), 0))
    if batch.probabilities is not None and batch.probabilities.shape[1]:
        probabilities = batch.probabilities[index, -1].astype(np.float64)
    else:
        probabilities = np.full(len(index), np.nan)
    labels = [batch.label[i] for i in index] if batch.label is not None else [None] * len(index)
    # A tensor model's outputs are decoded once a row, for all of its profiled values.
    lines = [{OUTPUTS: orjson.loads(batch.outputs[i])} for i in index] if batch.outputs else []
    flattened: list[dict[Any, Any]] = [{} for _ in lines]
    values = [_values(batch, path, index, lines, flattened) for path in value_paths]
    return ParsedBlock(features, probabilities, labels, outside, duplicates, values)


def _first_time(seen: dict[str, np.ndarray], job: str | None, row: int) -> bool:
    if job is None:
        return True  # a synchronous prediction: logged once by the request that made it
    rows = seen.get(job)
    if rows is None or rows.size <= row:
        grown = np.zeros(max(row + 1, 2 * (0 if rows is None else rows.size)), dtype=bool)
        if rows is not None:
            grown[: rows.size] = rows
        seen[job] = rows = grown
    if rows[row]:
        return False
    rows[row] = True
    return True


def _values(
    batch: LoggedRows,
    path: list[str | int],
    index: np.ndarray,
    lines: list[dict[str, Any]],
    flattened: list[dict[Any, Any]],
) -> list[Any]:
    """A numeric output's values (drift/outputs.py's paths) on the kept rows."""
    if path[0] == PREDICTION and batch.prediction is not None:
        prediction = batch.prediction[index]
        if len(path) == 1:
            return prediction.tolist() if prediction.ndim == 1 else [None] * len(index)
        column = int(path[1])
        if prediction.ndim == 2 and prediction.shape[1] > column:
            return prediction[:, column].tolist()
        return [None] * len(index)
    if path[0] == OUTPUTS and lines:
        return [value_at(line, path, cache) for line, cache in zip(lines, flattened, strict=True)]
    return [None] * len(index)
