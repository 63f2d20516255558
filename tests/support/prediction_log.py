"""The prediction log (docs/prediction-log.md) as tests see it: read what onnxq wrote, a row at a
time in the layout `onnxq log` prints; or write lines of the earlier JSONL layout by hand at
chosen times (drift still reads those files)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from drift.log_segments import read_segment, segment_files

FILE_PATTERN = "predictions-*.jsonl"  # the earlier layout: one JSONL file per UTC day


def prediction_log_files(directory: Path) -> list[Path]:
    """The segments of the prediction log in `directory`, by day, model, version and name."""
    return segment_files(directory)


def prediction_lines(directory: Path) -> list[dict[str, Any]]:
    """Every logged row in `directory`, as `onnxq log` prints it, segment by segment (each
    segment is one process's, in the order it wrote them). Like every reader, it stops a segment
    at a batch cut short (its writer was killed mid-write; that job's result was not stored, so
    it runs again and is logged whole elsewhere)."""
    lines: list[dict[str, Any]] = []
    for path in segment_files(directory):
        for batch in read_segment(path).batches:
            lines += batch.lines()
    return lines


def legacy_files(directory: Path) -> list[Path]:
    """The earlier layout's day files in `directory`, oldest first."""
    return sorted(directory.glob(FILE_PATTERN))


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_line(
    when: datetime,
    features: Sequence[Any],
    *,
    model: str = "m",
    version: int = 1,
    label: Any = 1,
    probabilities: Sequence[float] = (0.25, 0.75),
    row: int = 0,
) -> bytes:
    return orjson.dumps(
        {
            "ts": iso(when),
            "source": "sync",
            "request_id": "r" * 32,
            "job_id": None,
            "model": model,
            "version": version,
            "row": row,
            "features": list(features),
            "label": label,
            "probabilities": list(probabilities),
            "latency_ms": 0.5,
        }
    )


def append(
    directory: Path, day: str, lines: Iterable[bytes], *, newline_at_end: bool = True
) -> Path:
    """Append raw lines to predictions-<day>.jsonl (the last one without newline if asked)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"predictions-{day}.jsonl"
    payload = b"\n".join(lines)
    with path.open("ab") as handle:
        handle.write(payload + (b"\n" if newline_at_end else b""))
    return path
