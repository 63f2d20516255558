"""Large job data kept out of Redis: a file job's upload, its input rows and its result.

`JobBlobs` is the whole interface the job store and the gateway use, so that an object store can
stand in for `DirectoryBlobs` (files under `<state_dir>/blobs`, a volume every gateway and worker
shares in compose). A blob is named by its job and its kind; it is written whole or not at all
(a temporary name, renamed when complete), and lives as long as its job's record: the reconciler's
sweep removes the blobs of jobs whose record has expired (onnxq/jobs/large_data.py, sweep_blobs).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

# The kinds of blob a job has.
UPLOAD = "upload"  # a file body as it arrived, until its rows are checked
ROWS = "rows"  # the checked float32 input matrix (the worker reads it)
RESULT = "result"  # the result table as an Arrow IPC stream (GET /v1/jobs/<id>/result)
KINDS = (UPLOAD, ROWS, RESULT)
# A blob being written: `<job id>.<kind>.part-<pid>`, renamed to `<job id>.<kind>` when whole.
PART = ".part-"


class BlobWriter(Protocol):
    def write(self, data: bytes | memoryview) -> int: ...


class JobBlobs(Protocol):
    """Where a job's large data is kept."""

    def writer(self, job_id: str, kind: str) -> contextlib.AbstractContextManager[BlobWriter]:
        """Write a blob in parts: it exists once the block ends without an error."""
        ...

    def put(self, job_id: str, kind: str, data: bytes | memoryview) -> None: ...

    def read(self, job_id: str, kind: str) -> bytes | mmap.mmap | None:
        """The blob's bytes (mapped, not copied, where the store can), None if there is none."""
        ...

    def open(self, job_id: str, kind: str) -> BinaryIO | None: ...

    def size(self, job_id: str, kind: str) -> int | None: ...

    def delete(self, job_id: str, *kinds: str) -> None:
        """Remove the job's blobs of these kinds (all kinds when none are named)."""
        ...

    def job_ids(self, older_than_seconds: float) -> set[str]:
        """The jobs with a blob (whole or being written) last written that long ago or more."""
        ...


class DirectoryBlobs:
    """Blobs as files in one directory: `<root>/<job id>.<kind>`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, job_id: str, kind: str) -> Path:
        if kind not in KINDS or not job_id.replace("-", "").isalnum():
            raise ValueError(f"no blob {job_id!r} of kind {kind!r}")
        return self.root / f"{job_id}.{kind}"

    @contextlib.contextmanager
    def writer(self, job_id: str, kind: str) -> Iterator[BinaryIO]:
        final = self._path(job_id, kind)
        self.root.mkdir(parents=True, exist_ok=True)
        part = final.with_name(f"{final.name}{PART}{os.getpid()}")
        try:
            with part.open("wb") as out:
                yield out
            os.replace(part, final)
        finally:
            part.unlink(missing_ok=True)

    def put(self, job_id: str, kind: str, data: bytes | memoryview) -> None:
        with self.writer(job_id, kind) as out:
            out.write(data)

    def read(self, job_id: str, kind: str) -> bytes | mmap.mmap | None:
        try:
            with self._path(job_id, kind).open("rb") as file:
                if os.fstat(file.fileno()).st_size == 0:
                    return b""  # an empty file cannot be mapped
                # The map outlives the file object (and the file, if it is removed meanwhile).
                return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            return None

    def open(self, job_id: str, kind: str) -> BinaryIO | None:
        try:
            return self._path(job_id, kind).open("rb")
        except FileNotFoundError:
            return None

    def size(self, job_id: str, kind: str) -> int | None:
        try:
            return self._path(job_id, kind).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, job_id: str, *kinds: str) -> None:
        for kind in kinds or KINDS:
            self._path(job_id, kind).unlink(missing_ok=True)
        if not kinds:  # parts left by a writer that was killed
            for part in self.root.glob(f"{job_id}.*{PART}*"):
                part.unlink(missing_ok=True)

    def job_ids(self, older_than_seconds: float) -> set[str]:
        cutoff = time.time() - older_than_seconds
        found = set()
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root) as entries:
            for entry in entries:
                job_id = entry.name.split(".", 1)[0]
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime <= cutoff:
                        found.add(job_id)
        return found
