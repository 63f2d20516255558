"""A new job's checked rows as a file job's reader produces them (onnxq/models/file_inputs.py).

Few rows are kept in memory and go to Redis with the record, as a JSON job's do; once there are
more than the job store keeps inline, they are written to the job's rows blob as they come (the
blob the worker reads), so a million-row file is never also a 120 MB matrix in the gateway, nor
copied into the blob store afterwards.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from onnxq.jobs.blobs import ROWS, BlobWriter, JobBlobs


@dataclass(frozen=True)
class RowsInBlob:
    """A new job's rows, already in the blob store under its id (JobQueue.submit takes them)."""

    job_id: str
    rows: int
    width: int


class NewJobRows:
    """Collects float32 blocks of `width` features for job `job_id`: `add` each, then `finish`.

    Used as a context manager: on an error, or when the rows are not submitted after all
    (`discard`), a blob written so far is removed."""

    def __init__(self, blobs: JobBlobs | None, job_id: str, width: int, inline_rows: int):
        self.blobs, self.job_id, self.width, self.inline_rows = blobs, job_id, width, inline_rows
        self.rows = 0
        self._kept: list[np.ndarray] = []
        self._writer: BlobWriter | None = None
        self._open = contextlib.ExitStack()

    def add(self, block: np.ndarray) -> None:
        """Take a block of rows (copied: the caller may reuse its array)."""
        self.rows += len(block)
        if self._writer is None:
            self._kept.append(np.array(block, dtype=np.float32, copy=True))
            if self.rows <= self.inline_rows or self.blobs is None:
                return
            self._writer = self._open.enter_context(self.blobs.writer(self.job_id, ROWS))
            kept, self._kept = self._kept, []
            for part in kept:
                self._writer.write(memoryview(part).cast("B"))
            return
        self._writer.write(memoryview(np.ascontiguousarray(block, dtype=np.float32)).cast("B"))

    def finish(self) -> np.ndarray | RowsInBlob:
        """The rows: a matrix when few, else the blob, now whole under the job's name."""
        if self._writer is None:
            if not self._kept:
                return np.empty((0, self.width), np.float32)
            return np.concatenate(self._kept) if len(self._kept) > 1 else self._kept[0]
        self._open.close()  # the writer's end: the blob is renamed into place
        self._writer = None
        return RowsInBlob(self.job_id, self.rows, self.width)

    def discard(self) -> None:
        """Remove what was written (the rows were refused, or the submit replayed another job)."""
        self._open.close()
        if self.blobs is not None:
            self.blobs.delete(self.job_id, ROWS)

    def __enter__(self) -> NewJobRows:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None:
            # The writer sees the error (its part file is removed, never renamed into place).
            self._open.__exit__(kind, error, tb)
            self._writer = None
            self.discard()
