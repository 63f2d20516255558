"""Job records in Redis: what the gateway answers polls from and the worker writes results to."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NoReturn

import redis
from pydantic import BaseModel

from onnxq.broker.redis_client import redis_errors_as_unavailable
from onnxq.errors import JobConflict, JobExpired, JobNotFound


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # now running here
    ENDED = "ended"  # cancelled, or a duplicate delivery of a job that already ended
    POISONED = "poisoned"  # failed now: delivered too often
    MISSING = "missing"  # the record expired or never existed


@dataclass(frozen=True)
class Claim:
    job: Job | None
    state: ClaimState


def _claimed(job: Job, now: datetime, max_attempts: int) -> Job:
    if job.attempts >= max_attempts:
        # Every earlier delivery died with its worker: stop redelivering it.
        return job.model_copy(
            update={
                "status": JobStatus.FAILED,
                "finished_at": now,
                "attempts": job.attempts,
                "error": JobError(
                    type="poison_job",
                    message=(
                        f"the worker running this job was lost {job.attempts} times; not retrying"
                    ),
                ),
            }
        )
    return job.model_copy(
        update={"status": JobStatus.RUNNING, "started_at": now, "attempts": job.attempts + 1}
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


class JobError(BaseModel):
    type: str
    message: str


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
    attempts: int = 0

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude={"attempts"})


# Large results (a 100,000-row job) are stored zlib-compressed; JSON never starts with "z".
COMPRESS_ABOVE_BYTES = 32 * 1024


def dump_job(job: Job) -> bytes:
    raw = job.model_dump_json().encode()
    return b"z" + zlib.compress(raw, 1) if len(raw) > COMPRESS_ABOVE_BYTES else raw


def load_job(raw: bytes | str) -> Job:
    data = raw.encode() if isinstance(raw, str) else raw
    return Job.model_validate_json(zlib.decompress(data[1:]) if data[:1] == b"z" else data)


class JobStore:
    """One JSON value per job under `onnxq:job:<id>`, expiring `ttl_seconds` after its last write.

    Celery's own result backend cannot tell an unknown id from a queued one, so
    onnxq keeps its own record, written before the task is sent.
    """

    prefix = "onnxq:job:"
    # A tiny marker that outlives the record, so an expired job can be told
    # apart from one that never existed.
    tombstone_prefix = "onnxq:job-existed:"
    tombstone_factor = 7
    # A job's validated float32 input matrix, kept out of the Celery message.
    rows_prefix = "onnxq:rows:"
    # Jobs not yet ended, scored by their last change (epoch seconds): what the
    # reconciler looks through for jobs whose message was lost.
    active_key = "onnxq:jobs:active"

    def __init__(self, client: redis.Redis, ttl_seconds: int):
        self.client = client
        self.ttl_seconds = ttl_seconds

    def key(self, job_id: str) -> str:
        return self.prefix + job_id

    def rows_key(self, job_id: str) -> str:
        return self.rows_prefix + job_id

    def create(self, job: Job, rows: bytes | None = None) -> None:
        """Write a new job record (and its validated input rows, when given) in one transaction."""
        with redis_errors_as_unavailable(), self.client.pipeline() as pipe:
            pipe.set(self.key(job.job_id), dump_job(job), ex=self.ttl_seconds, nx=True)
            if rows is not None:
                pipe.set(self.rows_key(job.job_id), rows, ex=self.ttl_seconds)
            pipe.set(
                self.tombstone_prefix + job.job_id,
                "1",
                ex=self.ttl_seconds * self.tombstone_factor,
            )
            pipe.zadd(self.active_key, {job.job_id: job.submitted_at.timestamp()})
            created = pipe.execute()[0]
        if not created:
            raise ValueError(f"job {job.job_id} already exists")

    def get(self, job_id: str) -> Job:
        with redis_errors_as_unavailable():
            raw = self.client.get(self.key(job_id))
            if raw is None:
                self._raise_missing(job_id)
        return load_job(raw)

    def _raise_missing(self, job_id: str) -> NoReturn:
        if self.client.exists(self.tombstone_prefix + job_id):
            raise JobExpired(job_id, self.ttl_seconds)
        raise JobNotFound(job_id)

    def delete(self, job_id: str) -> None:
        with redis_errors_as_unavailable(), self.client.pipeline() as pipe:
            pipe.delete(self.key(job_id), self.tombstone_prefix + job_id, self.rows_key(job_id))
            pipe.zrem(self.active_key, job_id)
            pipe.execute()

    def update(self, job_id: str, change: Callable[[Job], Job]) -> Job:
        """Apply `change` to the stored job atomically (optimistic WATCH/MULTI)."""
        key = self.key(job_id)
        with redis_errors_as_unavailable(), self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        self._raise_missing(job_id)
                    job = change(load_job(raw))
                    pipe.multi()
                    pipe.set(key, dump_job(job), ex=self.ttl_seconds)
                    if job.status.ended:
                        pipe.zrem(self.active_key, job_id)
                    pipe.execute()
                    return job
                except redis.WatchError:
                    continue

    def claim_many(self, job_ids: list[str], max_attempts: int) -> dict[str, Claim]:
        """Mark queued (or redelivered running) jobs running in one transaction.

        A job already delivered `max_attempts` times is failed as a poison job instead.
        """
        keys = [self.key(job_id) for job_id in job_ids]
        with redis_errors_as_unavailable(), self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*keys)
                    raws = pipe.mget(keys)
                    now, claimed = utc_now(), {}
                    pipe.multi()
                    for job_id, key, raw in zip(job_ids, keys, raws, strict=True):
                        job = load_job(raw) if raw is not None else None
                        if job is None:
                            claimed[job_id] = Claim(None, ClaimState.MISSING)
                        elif job.status.ended:
                            claimed[job_id] = Claim(job, ClaimState.ENDED)
                        else:
                            job = _claimed(job, now, max_attempts)
                            pipe.set(key, dump_job(job), ex=self.ttl_seconds)
                            # The inputs live as long as the record that needs them.
                            pipe.expire(self.rows_key(job_id), self.ttl_seconds)
                            if job.status.ended:
                                pipe.zrem(self.active_key, job_id)
                            else:
                                pipe.zadd(self.active_key, {job_id: now.timestamp()})
                            state = ClaimState.POISONED if job.status.ended else ClaimState.CLAIMED
                            claimed[job_id] = Claim(job, state)
                    pipe.execute()
                    return claimed
                except redis.WatchError:
                    continue

    def store_many(self, jobs: list[Job]) -> set[str]:
        """Write final states of jobs this worker claimed, in one round trip.

        Returns the ids written; a record that expired meanwhile is not recreated.
        """
        with redis_errors_as_unavailable(), self.client.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.set(self.key(job.job_id), dump_job(job), ex=self.ttl_seconds, xx=True)
            for job in jobs:
                pipe.delete(self.rows_key(job.job_id))  # inputs are no longer needed
            if jobs:
                pipe.zrem(self.active_key, *(job.job_id for job in jobs))
            written = pipe.execute()[: len(jobs)]
        return {job.job_id for job, ok in zip(jobs, written, strict=True) if ok}

    def stale_active(self, idle_seconds: float, now: datetime, limit: int = 1000) -> list[str]:
        """Ids of jobs not ended whose last change is more than `idle_seconds` old."""
        cutoff = now.timestamp() - idle_seconds
        with redis_errors_as_unavailable():
            ids = self.client.zrangebyscore(self.active_key, "-inf", cutoff, start=0, num=limit)
        return [i.decode() if isinstance(i, bytes) else i for i in ids]

    def forget_active(self, job_ids: list[str]) -> None:
        """Drop jobs from the active index (ended, or their record expired)."""
        if job_ids:
            with redis_errors_as_unavailable():
                self.client.zrem(self.active_key, *job_ids)

    def rows_width(self, job: Job) -> int | None:
        """Features per row of a job's stored input matrix; None when the rows are gone."""
        with redis_errors_as_unavailable():
            size = int(self.client.strlen(self.rows_key(job.job_id)))
        return size // 4 // job.rows if size and job.rows else None

    def load_rows(self, job_ids: list[str]) -> dict[str, bytes | None]:
        """The stored input rows of these jobs (None where there are none)."""
        if not job_ids:
            return {}
        with redis_errors_as_unavailable():
            values = self.client.mget([self.rows_key(job_id) for job_id in job_ids])
        return dict(zip(job_ids, values, strict=True))

    def mark_running(self, job_id: str) -> Job | None:
        """Claim a job for running; None when it must not run (cancelled or already ended).

        A job found `running` is a redelivery after a lost worker: run it again.
        """

        def claim(job: Job) -> Job:
            if job.status.ended:
                return job
            return job.model_copy(update={"status": JobStatus.RUNNING, "started_at": utc_now()})

        job = self.update(job_id, claim)
        return None if job.status.ended else job

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job; a running or ended one raises JobConflict with its state."""

        def cancel(job: Job) -> Job:
            if job.status is not JobStatus.QUEUED:
                raise JobConflict(job.job_id, job.status.value)
            return job.model_copy(update={"status": JobStatus.CANCELLED, "finished_at": utc_now()})

        return self.update(job_id, cancel)

    def mark_succeeded(self, job_id: str, result: dict[str, Any]) -> Job:
        return self.update(
            job_id,
            lambda job: job.model_copy(
                update={"status": JobStatus.SUCCEEDED, "finished_at": utc_now(), "result": result}
            ),
        )

    def mark_failed(self, job_id: str, error_type: str, message: str) -> Job:
        return self.update(
            job_id,
            lambda job: job.model_copy(
                update={
                    "status": JobStatus.FAILED,
                    "finished_at": utc_now(),
                    "error": JobError(type=error_type, message=message),
                }
            ),
        )
