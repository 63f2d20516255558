"""The JSONL prediction log (docs/prediction-log.md) as tests see it: read what onnxq wrote, or
write lines by hand at chosen times."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

FILE_PATTERN = "predictions-*.jsonl"  # one file per UTC day


def prediction_log_files(directory: Path) -> list[Path]:
    """The day files of the prediction log in `directory`, oldest first."""
    return sorted(directory.glob(FILE_PATTERN))


def prediction_lines(directory: Path) -> list[dict[str, Any]]:
    """Every line of the prediction log in `directory`, parsed, in file and line order."""
    return [
        json.loads(line)
        for path in prediction_log_files(directory)
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


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
