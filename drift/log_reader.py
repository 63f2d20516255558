"""Read a window of the JSONL prediction log into per-feature bin counts, chunk by chunk.

The log (docs/prediction-log.md) is one file per UTC day, ``predictions-YYYY-MM-DD.jsonl``, one line
per predicted row, with ``features`` a list in manifest feature order. For a window of the last
``days`` days ending at ``now``:

- only files whose name's day falls in the window are opened (other names are ignored);
- within them, only lines whose ``ts`` lies in ``[now - days, now]`` are counted;
- lines are read in chunks of about ``chunk_size`` lines; each chunk is parsed (at once when it is
  in PredictionLog's layout, see drift/log_lines.py, else line by line with orjson), binned with the
  profile's edges and added to running counts, then dropped — memory is bounded by the chunk
  size, never by the window;
- numeric features are binned as float32, the values the model saw;
- a line that is not JSON (corrupt, or a truncated last line being written), or lacks ``ts``,
  ``model``, ``version`` or a ``features`` list, is skipped and counted in ``corrupt_lines``;
  a line of the model whose feature count differs from the profile's is counted in
  ``mismatched_lines``;
- a job may run twice (at-least-once delivery: a worker died after logging, before storing), so
  each (job_id, row) is counted once, however many lines it has; the others are counted in
  ``duplicate_lines``. Synchronous predictions (no job_id) are logged once by their request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from drift.feature_bins import CategoricalFeature, NumericFeature
from drift.log_lines import ParsedBlock, job_key, parse_block
from drift.log_segments import segment_files
from drift.outputs import value_at
from drift.profile import ReferenceProfile
from drift.segment_window import count_segments

LOG_FILE = re.compile(r"^predictions-(\d{4}-\d{2}-\d{2})\.jsonl$")
DEFAULT_DAYS = 7
DEFAULT_CHUNK_SIZE = 10_000
LINE_BYTES = 512  # a chunk is read as chunk_size x LINE_BYTES bytes, completed to a whole line


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def window_bounds(
    days: int = DEFAULT_DAYS, now: datetime | None = None, since: datetime | None = None
) -> tuple[datetime, datetime]:
    """``(now - days, now)`` in UTC, or ``(since, now)`` when ``since`` is given; naive is UTC."""
    end = _utc(now or datetime.now(UTC))
    if since is not None:
        start = _utc(since)
        if start >= end:
            raise ValueError(f"since ({start.isoformat()}) must be before now ({end.isoformat()})")
        return start, end
    if days < 1:
        raise ValueError("days must be at least 1")
    return end - timedelta(days=days), end


def log_files(log_dir: str | Path, start: datetime, end: datetime) -> list[Path]:
    """The daily log files whose UTC day overlaps ``[start, end]``, oldest first."""
    directory = Path(log_dir)
    if not directory.is_dir():
        return []
    found: list[tuple[date, Path]] = []
    for path in directory.iterdir():
        match = LOG_FILE.match(path.name)
        if not match or not path.is_file():
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        if start.date() <= day <= end.date():
            found.append((day, path))
    return [path for _, path in sorted(found)]


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


@dataclass(frozen=True)
class Progress:
    """How far a window read got: bytes of the window's files read so far, and rows counted."""

    bytes_read: int
    total_bytes: int
    rows: int

    @property
    def fraction(self) -> float:
        return self.bytes_read / self.total_bytes if self.total_bytes else 1.0


@dataclass
class FeatureBins:
    """Running bin counts of one feature (or output) over the chunks read so far."""

    feature: NumericFeature | CategoricalFeature
    counts: np.ndarray
    missing: int = 0
    unseen: int = 0  # beyond the training range, or of no training category

    def add(self, values: Any) -> None:
        counts, missing, unseen = self.feature.tally(values)
        self.counts += counts
        self.missing += missing
        self.unseen += unseen


@dataclass
class WindowCounts:
    """Bin counts of one model's logged rows in a window; the rows themselves are not kept."""

    start: datetime
    end: datetime
    features: list[FeatureBins]
    probability: FeatureBins | None = None
    label: FeatureBins | None = None
    values: list[FeatureBins] = field(default_factory=list)  # profile.values, in order
    paths: list[list[str | int]] = field(default_factory=list)  # where each is in a line
    rows: int = 0
    corrupt_lines: int = 0
    mismatched_lines: int = 0
    outside_window: int = 0
    duplicate_lines: int = 0
    files: list[str] = field(default_factory=list)
    seen_jobs: set[bytes] = field(default_factory=set, repr=False)  # job_key of counted rows

    @classmethod
    def empty(cls, profile: ReferenceProfile, start: datetime, end: datetime) -> WindowCounts:
        def bins(feature: NumericFeature | CategoricalFeature) -> FeatureBins:
            return FeatureBins(feature, np.zeros(feature.n_bins, dtype=np.int64))

        return cls(
            start=start,
            end=end,
            features=[bins(f) for f in profile.features],
            probability=bins(profile.probability) if profile.probability else None,
            label=bins(profile.label) if profile.label else None,
            values=[bins(value.feature) for value in profile.values],
            paths=[value.path for value in profile.values],
        )

    @property
    def outputs(self) -> list[FeatureBins]:
        return [b for b in (self.probability, self.label) if b is not None] + self.values

    def add_chunk(
        self,
        rows: list[list[Any]],
        probabilities: list[Any],
        labels: list[Any],
        values: list[list[Any]] | None = None,
    ) -> None:
        """Bin one chunk of rows (all of the profile's width) into the running counts; `values`
        holds each numeric output's column (self.paths), when the profile has any."""
        if not rows:
            return
        if self.features:
            frame = pd.DataFrame(rows, dtype=object)
            self._add_columns([frame[index] for index in range(len(self.features))])
        for bins, column in zip(self.values, values or [], strict=True):
            bins.add(column)
        self._add_outputs(probabilities, labels, len(rows))

    def add_parsed(self, parsed: ParsedBlock) -> None:
        """Bin a block the fast path parsed or a segment's batch (no corrupt or mismatched
        rows)."""
        self.outside_window += parsed.outside_window
        self.duplicate_lines += parsed.duplicates
        rows = len(parsed.labels)
        if rows:
            self._add_columns(list(parsed.features.T))
            for bins, column in zip(self.values, parsed.values, strict=False):
                bins.add(column)
            self._add_outputs(parsed.probabilities, parsed.labels, rows)

    def _add_columns(self, columns: list[Any]) -> None:
        # A numeric feature's tally reads the log's shortest decimals back as the float32 the
        # model saw (profile._numbers), or 10.26 would fall below the training edge
        # 10.260000228881836 (float32 10.26) and into the wrong bin.
        for bins, column in zip(self.features, columns, strict=True):
            bins.add(column)

    def _add_outputs(self, probabilities: Any, labels: list[Any], rows: int) -> None:
        if self.probability is not None:
            self.probability.add(probabilities)
        if self.label is not None:
            self.label.add(labels)
        self.rows += rows


def _last_probability(value: Any) -> Any:
    if isinstance(value, list) and value:
        return value[-1]
    return None


def read_window(
    profile: ReferenceProfile,
    log_dir: str | Path,
    model: str,
    version: int | None = None,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    since: datetime | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> WindowCounts:
    """Count the logged rows of ``model`` (and ``version``, if given) in the window, by bin.

    Files are read about ``chunk_size`` lines at a time; a chunk in PredictionLog's own layout takes
    the fast path (drift/log_lines.py), any other chunk is parsed line by line with orjson.
    ``progress`` is called after each chunk and once at the end.
    """
    start, end = window_bounds(days, now, since)
    result = WindowCounts.empty(profile, start, end)
    width = len(profile.features)
    paths = log_files(log_dir, start, end)
    segments = segment_files(log_dir, model, version, start.date(), end.date())
    total_bytes = sum(path.stat().st_size for path in [*paths, *segments])
    bytes_read = 0
    for path in paths:
        result.files.append(path.name)
        with path.open("rb") as handle:
            # Whole lines, about chunk_size of them: iterating a file line by line costs more
            # than parsing a block of lines does on the fast path.
            while block := handle.read(chunk_size * LINE_BYTES) + handle.readline():
                bytes_read += len(block)
                lines = block.count(b"\n") + (not block.endswith(b"\n"))
                parsed = parse_block(
                    block, lines, model, version, start, end, width, result.seen_jobs
                )
                if parsed is None:
                    chunk = [raw for raw in block.split(b"\n") if raw.strip()]
                    _read_lines(result, chunk, model, version, width)
                else:
                    result.add_parsed(parsed)
                if progress is not None:
                    progress(Progress(min(bytes_read, total_bytes), total_bytes, result.rows))

    def segment_read(size: int) -> None:
        nonlocal bytes_read
        bytes_read += size
        if progress is not None:
            progress(Progress(min(bytes_read, total_bytes), total_bytes, result.rows))

    count_segments(result, Path(log_dir), segments, width, segment_read)
    if progress is not None:
        progress(Progress(total_bytes, total_bytes, result.rows))
    return result


def _read_lines(
    result: WindowCounts, lines: list[bytes], model: str, version: int | None, width: int
) -> None:
    """The general path: every line parsed on its own, anything odd skipped and counted."""
    rows: list[list[Any]] = []
    probabilities: list[Any] = []
    labels: list[Any] = []
    values: list[list[Any]] = [[] for _ in result.paths]
    for raw in lines:
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            result.corrupt_lines += 1
            continue
        # A tensor model logs no features (null): its profile has none (width 0).
        features = line.get("features") if isinstance(line, dict) else None
        if not isinstance(features, list) and not (width == 0 and isinstance(line, dict)):
            result.corrupt_lines += 1
            continue
        if line.get("model") != model:
            continue
        if version is not None and line.get("version") != version:
            continue
        ts = _parse_ts(line.get("ts"))
        if ts is None:
            result.corrupt_lines += 1
            continue
        if not result.start <= ts <= result.end:
            result.outside_window += 1
            continue
        features = features or []
        if len(features) != width:
            result.mismatched_lines += 1
            continue
        job_id, row = line.get("job_id"), line.get("row")
        if isinstance(job_id, str) and isinstance(row, int):
            key = job_key(job_id, row)
            if key in result.seen_jobs:
                result.duplicate_lines += 1
                continue
            result.seen_jobs.add(key)
        rows.append(features)
        probabilities.append(_last_probability(line.get("probabilities")))
        labels.append(line.get("label"))
        flattened: dict[str, Any] = {}
        for column, path in zip(values, result.paths, strict=True):
            column.append(value_at(line, path, flattened))
    result.add_chunk(rows, probabilities, labels, values)
