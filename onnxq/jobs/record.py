"""The job record: the document the gateway answers polls with, and how it is stored as bytes."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import SkipJsonSchema


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


def utc_now() -> datetime:
    return datetime.now(UTC)


class JobError(BaseModel):
    type: str
    message: str


# Fields of the stored record that no answer carries.
PRIVATE_FIELDS = frozenset({"attempts", "worker", "notify", "rows_in_blob"})


class Job(BaseModel):
    """The public document of one job; `result` and `error` appear once it has ended."""

    job_id: str
    status: JobStatus
    model: str
    version: int
    rows: int
    request_id: str | None = None
    submitted_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: JobError | None = None
    callback_url: str | None = None
    # Stored, never answered (public() leaves them out, and so does the OpenAPI schema):
    attempts: SkipJsonSchema[int] = 0
    # "<host>:<pid>" of the worker process that claimed it last: for operators and fault tests.
    worker: SkipJsonSchema[str | None] = None
    # The pub/sub channel of the gateway process whose request waits for it (keys.waiter_channel).
    notify: SkipJsonSchema[str | None] = None
    # Its input rows are in the blob store (onnxq/jobs/blobs.py), not beside the record in Redis.
    rows_in_blob: SkipJsonSchema[bool] = False

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude=PRIVATE_FIELDS)


class JobList(BaseModel):
    """Several jobs' documents, in the order they were asked for; `missing` lists the ids that
    have no job (never submitted, or expired with their result)."""

    jobs: list[Job]
    missing: list[str]


# Large results (a 100,000-row job) are stored zlib-compressed; JSON never starts with "z".
COMPRESS_ABOVE_BYTES = 32 * 1024


def dump_job(job: Job) -> bytes:
    raw = job.model_dump_json().encode()
    return b"z" + zlib.compress(raw, 1) if len(raw) > COMPRESS_ABOVE_BYTES else raw


def load_job(raw: bytes | str) -> Job:
    data = raw.encode() if isinstance(raw, str) else raw
    return Job.model_validate_json(zlib.decompress(data[1:]) if data[:1] == b"z" else data)
