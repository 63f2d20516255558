"""Keeping the prediction log's size in hand: old days compressed, days past retention removed.

Beat runs `tidy_prediction_log` (worker/app.py's log-tidy task). A day's segments are compressed
(gzip, `<segment>.arrows.gz`) once the day is two days old: by then no writer has a batch of that
day left to append (a process closes its earlier days' segments at its first batch of a new day,
and a batch's day is the moment it was predicted). A day older than `keep_days` (at least the
drift window, Settings) is removed with its segments. Readers (drift/log_segments.py) read both
forms, and prefer the uncompressed file while both exist.
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from drift import log_segments as fmt

COMPRESS_LEVEL = 1  # float32 buffers gain little from more; the ids and repeated values compress


@dataclass
class TidyReport:
    removed_days: list[str] = field(default_factory=list)
    compressed: int = 0  # segments
    bytes_before: int = 0  # of the segments compressed
    bytes_after: int = 0


def tidy_prediction_log(log_dir: Path, keep_days: int, today: date) -> TidyReport:
    """Compress the segments of days before yesterday; remove the days before
    `today - keep_days` (the drift window's oldest day is `today - keep_days` at the latest)."""
    report = TidyReport()
    if not log_dir.is_dir():
        return report
    for day_dir in sorted(log_dir.iterdir()):
        day = fmt.day_of_directory(day_dir)
        if day is None:
            continue
        if day < today - timedelta(days=keep_days):
            shutil.rmtree(day_dir, ignore_errors=True)
            report.removed_days.append(day_dir.name)
        elif day < today - timedelta(days=1):
            for segment in sorted(day_dir.glob(f"*/*/*{fmt.SUFFIX}")):
                _compress(segment, report)
    return report


def _compress(segment: Path, report: TidyReport) -> None:
    """segment -> segment.gz, whole or not at all: written beside under a temporary name,
    renamed, then the original removed (a reader between the two reads the original)."""
    target = segment.with_name(segment.name + fmt.COMPRESSED_SUFFIX)
    partial = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        with segment.open("rb") as source, gzip.open(partial, "wb", COMPRESS_LEVEL) as sink:
            shutil.copyfileobj(source, sink, 1024 * 1024)
        size = segment.stat().st_size
        os.replace(partial, target)
        segment.unlink()
    except FileNotFoundError:  # another tidy got there first
        partial.unlink(missing_ok=True)
        return
    report.compressed += 1
    report.bytes_before += size
    report.bytes_after += target.stat().st_size
