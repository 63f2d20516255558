"""Completion callbacks: POST the final job document to the client's URL, with bounded retries."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from enum import StrEnum
from typing import Any

import structlog

from onnxq.errors import JobNotFound, QueueUnavailable
from onnxq.jobs import JobStore

log = structlog.get_logger("onnxq.worker")

MAX_BACKOFF_SECONDS = 60.0


class CallbackFailed(Exception):
    """The callback URL did not answer 2xx."""


class CallbackOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"  # gave up after the last attempt
    DROPPED = "dropped"  # nothing to deliver: the job record is gone


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a bodyless GET and call it done.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


def post_json(url: str, document: dict[str, Any], timeout: float) -> int:
    """POST `document` as JSON; return the status, raise CallbackFailed unless it is 2xx."""
    request = urllib.request.Request(
        url,
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "onnxq-callback"},
        method="POST",
    )
    try:
        with _NO_REDIRECTS.open(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise CallbackFailed(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CallbackFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= status < 300:
        raise CallbackFailed(f"HTTP {status}")
    return status


def backoff_seconds(attempt: int, base: float) -> float:
    """Delay before attempt `attempt + 1`: base, 2·base, 4·base … capped at a minute."""
    return float(min(base * (2**attempt), MAX_BACKOFF_SECONDS))


def deliver_callback(
    job_id: str, *, store: JobStore, attempt: int, max_attempts: int, timeout: float
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
        post_json(job.callback_url, job.public(), timeout)
    except CallbackFailed as exc:
        outcome = CallbackOutcome.FAILED if attempt + 1 >= max_attempts else CallbackOutcome.RETRY
        level = log.error if outcome is CallbackOutcome.FAILED else log.warning
        level("callback", status=outcome.value, error=str(exc), **fields)
        return outcome
    log.info("callback", status=CallbackOutcome.DELIVERED.value, **fields)
    return CallbackOutcome.DELIVERED
