"""The worker's one `job` log event per job, and the job metrics that go with it.

docs/observability.md lists every field; the runner (worker/runner.py) calls these.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from onnxq.jobs.lifecycle import Claim, ClaimState
from onnxq.jobs.record import Job, JobStatus
from onnxq.telemetry import metrics

log = structlog.get_logger("onnxq.worker")


def ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def started(job: Job) -> None:
    """A claimed job starts: how long it waited in the queue."""
    if job.started_at is not None:
        metrics.job_started(job.model, (job.started_at - job.submitted_at).total_seconds())


def not_run(fields: dict[str, Any], claim: Claim, started: float) -> None:
    """A delivery that did not run its job: poisoned, ended already, or its record gone.

    `fields`: the message's job_id, request_id, model, version and rows.
    """
    fields = {**fields, "duration_ms": ms_since(started)}
    job = claim.job
    if claim.state is ClaimState.POISONED and job is not None:
        log.error(
            "job", status=job.status.value, error_type="poison_job", attempts=job.attempts, **fields
        )
        metrics.job_failed(job.model, "poison_job")
    elif claim.state is ClaimState.ENDED and job is not None:
        # Cancelled while queued, or a duplicate delivery of a job that ended.
        log.info("job", status="skipped", job_status=job.status.value, **fields)
    else:
        log.warning("job", status="dropped", reason="job record missing or expired", **fields)


def expired_while_running(job_id: str, started: float) -> None:
    """The record expired while the job ran: nobody can poll it any more."""
    log.warning(
        "job",
        status="dropped",
        reason="job record expired while running",
        job_id=job_id,
        duration_ms=ms_since(started),
    )


def ended(job: Job, batch_size: int, started: float) -> None:
    """A job this worker ran has ended and its outcome is stored."""
    fields = {
        "job_id": job.job_id,
        "request_id": job.request_id,
        "model": job.model,
        "version": job.version,
        "rows": job.rows,
        "batch_jobs": batch_size,
        "attempt": job.attempts,
        "duration_ms": ms_since(started),
    }
    if job.status is JobStatus.SUCCEEDED:
        log.info("job", status=job.status.value, **fields)
        metrics.job_succeeded(job.model)
        return
    error = job.error
    log.warning(
        "job",
        status=job.status.value,
        error_type=error and error.type,
        error=error and error.message,
        **fields,
    )
    metrics.job_failed(job.model, error.type if error else "unknown")
