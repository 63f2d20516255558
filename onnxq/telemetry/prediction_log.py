"""The append-only JSONL prediction log: one line per predicted row, sync or async."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from onnxq.models.results import PredictionResult
from onnxq.telemetry.log_line_encoding import encode_lines


class PredictionLog:
    """Appends prediction lines to <dir>/predictions-YYYY-MM-DD.jsonl (UTC day = rotation)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()
        self._open: tuple[Path, int] | None = None
        self._day: tuple[date, Path] | None = None

    def path_for(self, when: datetime) -> Path:
        day = when.date()
        if self._day is None or self._day[0] != day:  # formatted once a day, not per line
            self._day = (day, self.directory / f"predictions-{day:%Y-%m-%d}.jsonl")
        return self._day[1]

    def record(self, **prediction: Any) -> int:
        """Append one line per row (the arguments of `lines`); return how many were written."""
        with self.batch() as batch:
            return batch.record(**prediction)

    @contextmanager
    def batch(self) -> Iterator[PredictionBatch]:
        """Lines recorded on the batch are appended together, in one write, when it closes (a
        worker's micro-batch: one lock and one write instead of one per job)."""
        batch = PredictionBatch(self)
        yield batch
        for path, lines in batch.lines.items():
            self._append(path, b"".join(lines))

    def lines(
        self,
        *,
        model: str,
        version: int,
        rows: np.ndarray | Sequence[Sequence[float]],
        result: PredictionResult,
        latency_ms: float,
        request_id: str | None = None,
        job_id: str | None = None,
        source: str,
    ) -> tuple[Path, bytes]:
        """The file and the lines (newline-terminated) that `record` appends.

        Features are logged as the float32 values the model saw, each written as
        its shortest round-trip decimal (17.99, not 17.989999771118164), in
        manifest order whatever form the request used; a missing value is null. A tensor
        model's input tensors are not logged (`features` is null): its outputs are.
        """
        now = datetime.now(UTC)
        timestamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        tabular = not isinstance(rows, np.ndarray) or rows.dtype.names is None
        lines = encode_lines(
            timestamp=timestamp,
            source=source,
            request_id=request_id,
            job_id=job_id,
            model=model,
            version=version,
            rows=len(rows),
            matrix=np.ascontiguousarray(rows, dtype=np.float32) if tabular else None,
            columns=result.log_columns(),
            latency_ms=latency_ms,
        )
        return self.path_for(now), lines

    def _append(self, path: Path, payload: bytes) -> None:
        with self._lock:
            fd = self._file_for(path)
            # O_APPEND puts every write at the end; the lock keeps a large batch from a second
            # process out of the middle of ours, and the loop finishes a short write before
            # anyone else may write.
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                view = memoryview(payload)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _file_for(self, path: Path) -> int:
        """The open descriptor of today's file: opened once per day and process, not per write
        (an open and a close were a tenth of a sync predict's CPU). A file removed while open
        is opened again, so lines never go to a deleted inode."""
        if self._open is not None:
            open_path, fd = self._open
            if open_path == path and os.fstat(fd).st_nlink > 0:
                return fd
            os.close(fd)
            self._open = None
        # The directory is made when an append finds it missing, not checked on every request.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._open = (path, fd)
        return fd

    def close(self) -> None:
        with self._lock:
            if self._open is not None:
                os.close(self._open[1])
                self._open = None


class PredictionBatch:
    """Lines waiting to be appended together (PredictionLog.batch)."""

    def __init__(self, log: PredictionLog):
        self._log = log
        self.lines: dict[Path, list[bytes]] = {}

    def record(self, **prediction: Any) -> int:
        """PredictionLog.record's arguments; the lines are written when the batch closes."""
        path, lines = self._log.lines(**prediction)
        self.lines.setdefault(path, []).append(lines)
        return len(prediction["rows"])  # a line per row
