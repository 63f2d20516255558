"""Completion callbacks: POST the final job document to the client's URL, with bounded retries."""

from __future__ import annotations

from enum import StrEnum

import structlog

from onnxq.backoff import backoff_seconds
from onnxq.destinations import DestinationPolicy
from onnxq.errors import JobNotFound, QueueUnavailable
from onnxq.jobs.store import JobStore
from onnxq.webhook import DestinationRefused, WebhookFailed, post_json

log = structlog.get_logger("onnxq.worker")

MAX_BACKOFF_SECONDS = 60.0


class CallbackOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"  # gave up after the last attempt
    DROPPED = "dropped"  # nothing to deliver: the job record is gone


def callback_delay(attempt: int, base: float) -> float:
    """Delay before attempt `attempt + 1`: base, 2·base, 4·base … capped at a minute."""
    return backoff_seconds(attempt, base, cap=MAX_BACKOFF_SECONDS)


def deliver_callback(
    job_id: str,
    *,
    store: JobStore,
    attempt: int,
    max_attempts: int,
    timeout: float,
    destinations: DestinationPolicy,
) -> CallbackOutcome:
    """Try one delivery; say whether to retry. Never touches the job's own state."""
    fields = {"job_id": job_id, "attempt": attempt + 1, "max_attempts": max_attempts}
    try:
        job = store.get(job_id)
    except JobNotFound:
        log.warning("callback", status=CallbackOutcome.DROPPED.value, **fields)
        return CallbackOutcome.DROPPED
    except QueueUnavailable as exc:
        log.warning("callback", status=CallbackOutcome.RETRY.value, error=exc.message, **fields)
        return CallbackOutcome.RETRY
    if job.callback_url is None:
        return CallbackOutcome.DROPPED
    fields["request_id"] = job.request_id
    try:
        post_json(job.callback_url, job.public(), timeout, "onnxq-callback", policy=destinations)
    except WebhookFailed as exc:
        # A refused destination stays refused: no retry.
        last = attempt + 1 >= max_attempts or isinstance(exc, DestinationRefused)
        outcome = CallbackOutcome.FAILED if last else CallbackOutcome.RETRY
        level = log.error if outcome is CallbackOutcome.FAILED else log.warning
        level("callback", status=outcome.value, error=str(exc), **fields)
        return outcome
    log.info("callback", status=CallbackOutcome.DELIVERED.value, **fields)
    return CallbackOutcome.DELIVERED
