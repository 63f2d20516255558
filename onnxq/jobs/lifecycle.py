"""Every state change of a job, as pure functions from one Job to the next.

    queued ──claim──► running ──succeed──► succeeded
       │                 │    └─fail────► failed  (a model or input fault, timeout, inputs gone)
       │                 └─claim again (redelivered after a lost worker; poison past max attempts)
       └──cancel──► cancelled

The store applies these inside its transactions (JobStore.update, claim_many,
store_many); nothing else changes a job's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from onnxq.errors import JobConflict
from onnxq.jobs.record import Job, JobError, JobStatus, utc_now


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # now running here
    ENDED = "ended"  # cancelled, or a duplicate delivery of a job that already ended
    POISONED = "poisoned"  # failed now: delivered too often
    MISSING = "missing"  # the record expired or never existed


@dataclass(frozen=True)
class Claim:
    job: Job | None
    state: ClaimState

    @property
    def changed(self) -> bool:
        """Whether the claim changed the record (so it must be written back)."""
        return self.state in {ClaimState.CLAIMED, ClaimState.POISONED}


def claim(job: Job | None, now: datetime, max_attempts: int, worker: str | None = None) -> Claim:
    """What one delivery of a job's message does to it.

    A queued job starts running; a running one is a redelivery after a lost
    worker and runs again, unless it was already delivered `max_attempts` times.
    """
    if job is None:
        return Claim(None, ClaimState.MISSING)
    if job.status.ended:
        return Claim(job, ClaimState.ENDED)
    if job.attempts >= max_attempts:
        return Claim(poisoned(job, now), ClaimState.POISONED)
    return Claim(start(job, now, worker), ClaimState.CLAIMED)


def start(job: Job, now: datetime, worker: str | None = None) -> Job:
    """Running from `now` in `worker`, one more delivery counted."""
    return job.model_copy(
        update={
            "status": JobStatus.RUNNING,
            "started_at": now,
            "attempts": job.attempts + 1,
            "worker": worker,
        }
    )


def poisoned(job: Job, now: datetime) -> Job:
    """Every earlier delivery died with its worker: stop redelivering it."""
    message = f"the worker running this job was lost {job.attempts} times; not retrying"
    return fail(job, "poison_job", message, now)


def succeed(job: Job, result: dict[str, Any], now: datetime | None = None) -> Job:
    return job.model_copy(
        update={"status": JobStatus.SUCCEEDED, "finished_at": now or utc_now(), "result": result}
    )


def fail(job: Job, error_type: str, message: str, now: datetime | None = None) -> Job:
    return job.model_copy(
        update={
            "status": JobStatus.FAILED,
            "finished_at": now or utc_now(),
            "error": JobError(type=error_type, message=message),
        }
    )


def timed_out(job: Job, batch_jobs: int, now: datetime | None = None) -> Job:
    message = f"the job ran past its time limit ({batch_jobs} job(s) in the batch)"
    return fail(job, "timeout", message, now)


def inputs_missing(job: Job, now: datetime | None = None) -> Job:
    """Its stored rows expired before it ran: end it rather than leave it running."""
    return fail(job, "inputs_missing", "the job's input rows are no longer stored (expired)", now)


def cancel(job: Job, now: datetime | None = None) -> Job:
    """Cancel a queued job; a running or ended one raises JobConflict with its state."""
    if job.status is not JobStatus.QUEUED:
        raise JobConflict(job.job_id, job.status.value)
    return job.model_copy(update={"status": JobStatus.CANCELLED, "finished_at": now or utc_now()})
