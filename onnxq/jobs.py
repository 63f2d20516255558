"""Job records in Redis: what the gateway answers polls from and the worker writes results to."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NoReturn, TypeVar

import redis
from pydantic import BaseModel
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from onnxq.errors import JobConflict, JobExpired, JobNotFound, QueueUnavailable

T = TypeVar("T")


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

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def connect_redis(url: str, *, socket_timeout: float = 2.0) -> redis.Redis:
    """A client that fails fast when Redis is down, so an outage becomes a quick 503.

    redis-py's default retries with backoff make each refused call take seconds.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=1,
        socket_timeout=socket_timeout,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), retries=1),
    )


@contextmanager
def redis_errors_as_unavailable() -> Iterator[None]:
    """Turn a Redis outage into a 503-shaped error instead of a stack trace."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise QueueUnavailable(f"the job store is unreachable: {exc}") from exc


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

    def __init__(self, client: redis.Redis, ttl_seconds: int):
        self.client = client
        self.ttl_seconds = ttl_seconds

    def key(self, job_id: str) -> str:
        return self.prefix + job_id

    def create(self, job: Job) -> None:
        with redis_errors_as_unavailable(), self.client.pipeline() as pipe:
            pipe.set(self.key(job.job_id), job.model_dump_json(), ex=self.ttl_seconds, nx=True)
            pipe.set(
                self.tombstone_prefix + job.job_id, "1",
                ex=self.ttl_seconds * self.tombstone_factor,
            )  # fmt: skip
            created, _ = pipe.execute()
        if not created:
            raise ValueError(f"job {job.job_id} already exists")

    def get(self, job_id: str) -> Job:
        with redis_errors_as_unavailable():
            raw = self.client.get(self.key(job_id))
            if raw is None:
                self._raise_missing(job_id)
        return Job.model_validate_json(raw)

    def _raise_missing(self, job_id: str) -> NoReturn:
        if self.client.exists(self.tombstone_prefix + job_id):
            raise JobExpired(job_id, self.ttl_seconds)
        raise JobNotFound(job_id)

    def delete(self, job_id: str) -> None:
        with redis_errors_as_unavailable():
            self.client.delete(self.key(job_id), self.tombstone_prefix + job_id)

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
                    job = change(Job.model_validate_json(raw))
                    pipe.multi()
                    pipe.set(key, job.model_dump_json(), ex=self.ttl_seconds)
                    pipe.execute()
                    return job
                except redis.WatchError:
                    continue

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
