"""The prediction log: every predicted row, sync or async, as Arrow record batches.

The format is drift/log_segments.py's (docs/prediction-log.md): one segment file per process,
model version and UTC day, one record batch per request or job. A batch is the model's own
arrays (the float32 features and outputs), so logging a 1,000-row request costs a tenth of a
millisecond, not the milliseconds of a JSON line per row.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from drift import log_segments as fmt
from onnxq.models.results import PredictionResult
from onnxq.telemetry.direct_writes import DIRECT_MIN_BYTES, DirectAppender, open_direct, write_all
from onnxq.telemetry.log_arrays import RecordBatch, record_batch, schema_message

log = structlog.get_logger("onnxq.prediction_log")

SEGMENT_BYTES = 256 * 1024 * 1024  # a process starts a new segment past this size


@dataclass
class _Segment:
    """One open segment file of this process."""

    path: Path
    fd: int
    key: tuple[str, str, int]  # (day, model, version)
    schema_key: tuple[Any, ...]
    size: int = 0
    direct_fd: int | None = None  # large appends, past the page cache (direct_writes.py)
    direct_tried: bool = False

    def frames(self, batch: RecordBatch, first: bool) -> list[Any]:
        """The batch's message, after the segment's schema when it is the first."""
        message = batch.message()
        return [schema_message(batch.schema_key), *message] if first else message

    def append(self, parts: list[Any], direct: DirectAppender) -> None:
        """Write the parts (bytes, numpy buffers) in order, gathered, not copied; a large append
        past the page cache."""
        views = [memoryview(part).cast("B") for part in parts]
        total = sum(view.nbytes for view in views)
        if total >= DIRECT_MIN_BYTES and not self.direct_tried:
            self.direct_tried = True
            self.direct_fd = open_direct(self.path)
        if total >= DIRECT_MIN_BYTES and self.direct_fd is not None:
            if not direct.append(self.fd, self.direct_fd, self.size, views):
                os.close(self.direct_fd)  # refused: every later append goes through `fd`
                self.direct_fd = None
                log.warning("prediction_log_direct_refused", segment=str(self.path))
        else:
            write_all(self.fd, views)
        self.size += total

    def close(self) -> None:
        os.close(self.fd)
        if self.direct_fd is not None:
            os.close(self.direct_fd)


class PredictionLog:
    """Appends prediction record batches under `directory` (drift/log_segments.py's layout)."""

    def __init__(
        self,
        directory: Path,
        segment_bytes: int = SEGMENT_BYTES,
        clock: Callable[[], int] = time.time_ns,
    ):
        """`clock`: nanoseconds since the epoch, each batch's `ts` (a benchmark's log of past
        days sets it)."""
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.clock = clock
        self._lock = threading.Lock()
        self._segments: dict[tuple[str, str, int], _Segment] = {}
        self._direct = DirectAppender()
        self._start_naming()

    def _start_naming(self) -> None:
        """This process's segment names: host, pid and a token new at every start (and fork)."""
        self._pid = os.getpid()
        self._name = f"{socket.gethostname()}-{self._pid}-{secrets.token_hex(4)}"
        self._sequence = 0

    def record(self, **prediction: Any) -> int:
        """Append one record batch (the arguments of `encode`); return how many rows it holds."""
        batch = self.encode(**prediction)
        self._append([batch])
        return batch.rows

    @contextmanager
    def batch(self) -> Iterator[PredictionBatch]:
        """Batches recorded here are appended when it closes, one write per segment (a
        worker's micro-batch: one write instead of one per job)."""
        batch = PredictionBatch(self)
        yield batch
        self._append(batch.pending)

    def encode(
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
        first_row: int = 0,
    ) -> RecordBatch:
        """The record batch of one request's or job's rows: features as the float32 values the
        model saw, in manifest order (NaN where a nullable feature was missing); none for a
        tensor model, whose input tensors are not logged."""
        tabular = not isinstance(rows, np.ndarray) or rows.dtype.names is None
        return record_batch(
            model=model,
            version=version,
            ts_ms=self.clock() // 1_000_000,
            source=source,
            request_id=request_id,
            job_id=job_id,
            rows=len(rows),
            first_row=first_row,
            features=np.ascontiguousarray(rows, dtype=np.float32) if tabular else None,
            columns=result.log_columns(),
            latency_ms=latency_ms,
        )

    def _append(self, pending: list[RecordBatch]) -> None:
        if not pending:
            return
        with self._lock:
            if os.getpid() != self._pid:
                self._forked()
            # Frames by segment (by identity: a batch of another schema, or past the size,
            # leaves its key's segment for a new one, and what was framed for the old one still
            # goes to the old one), each segment's in one write.
            frames: dict[int, tuple[_Segment, list[Any]]] = {}
            retired: list[_Segment] = []
            try:
                for batch in pending:
                    segment = self._segment_for(batch, retired)
                    _, framed = frames.setdefault(id(segment), (segment, []))
                    framed += segment.frames(batch, first=not segment.size and not framed)
                for segment, framed in frames.values():
                    try:
                        segment.append(framed, self._direct)
                    except OSError:
                        # Part of a batch may be in the file: nothing more goes after it.
                        if self._segments.get(segment.key) is segment:
                            del self._segments[segment.key]
                            retired.append(segment)
                        raise
            finally:
                for segment in retired:
                    segment.close()

    def _segment_for(self, batch: RecordBatch, retired: list[_Segment]) -> _Segment:
        key = batch.segment_key
        segment = self._segments.get(key)
        if segment is not None and (
            segment.schema_key != batch.schema_key
            or segment.size >= self.segment_bytes
            or os.fstat(segment.fd).st_nlink == 0  # removed while open: never write to it
        ):
            retired.append(self._segments.pop(key))
            segment = None
        if segment is None:
            # A new day's first batch: the earlier days' segments get nothing more.
            for earlier in [k for k in self._segments if k[0] != key[0]]:
                retired.append(self._segments.pop(earlier))
            segment = self._open(batch)
            self._segments[key] = segment
        return segment

    def _open(self, batch: RecordBatch) -> _Segment:
        day = datetime.fromtimestamp(batch.ts_ms / 1000, UTC).date()
        directory = fmt.segment_directory(self.directory, day, batch.model, batch.version)
        directory.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        path = directory / f"{self._name}-{self._sequence:04d}{fmt.SUFFIX}"
        # O_EXCL: a segment has one writer, ever; a restarted process with the same pid makes its
        # own (its name's token differs).
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        return _Segment(path, os.open(path, flags, 0o644), batch.segment_key, batch.schema_key)

    def _forked(self) -> None:
        """In a child forked with open segments: they are the parent's; start this process's own."""
        for segment in self._segments.values():
            segment.close()
        self._segments.clear()
        self._start_naming()

    def close(self) -> None:
        with self._lock:
            for segment in self._segments.values():
                segment.close()
            self._segments.clear()


class PredictionBatch:
    """Record batches waiting to be appended together (PredictionLog.batch)."""

    def __init__(self, log: PredictionLog):
        self._log = log
        self.pending: list[RecordBatch] = []

    def record(self, **prediction: Any) -> int:
        """PredictionLog.encode's arguments; the batch is written when this closes."""
        batch = self._log.encode(**prediction)
        self.pending.append(batch)
        return batch.rows
