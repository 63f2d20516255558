"""Idempotent submits: an Idempotency-Key claims the job it created, for as long as jobs live.

The claim (keys.idempotency) holds the job id, a fingerprint of the request body
and the time. A repeat with the same body gets the first job back; another body
is an IdempotencyConflict.
"""

from __future__ import annotations

import contextlib
import json
import time

from onnxq.broker.redis_client import redis_errors_as_unavailable
from onnxq.errors import IdempotencyConflict, JobNotFound, QueueUnavailable
from onnxq.jobs.record import Job
from onnxq.jobs.store import JobStore

# How long a claimed idempotency key without a job record counts as in progress.
CLAIM_GRACE_SECONDS = 10.0


def claim(store: JobStore, claim_key: str, job_id: str, fingerprint: str) -> Job | None:
    """Claim the key for `job_id`; return the earlier job if the key was already used."""
    client = store.client
    value = json.dumps({"job_id": job_id, "fingerprint": fingerprint, "at": time.time()})
    for _ in range(3):
        with redis_errors_as_unavailable():
            if client.set(claim_key, value, nx=True, ex=store.ttl_seconds):
                return None
            raw = client.get(claim_key)
        if raw is None:
            continue  # expired between SET and GET: try to claim again
        earlier = json.loads(raw)
        if earlier["fingerprint"] != fingerprint:
            raise IdempotencyConflict("this Idempotency-Key was used with a different request body")
        try:
            return store.get(earlier["job_id"])
        except JobNotFound:
            if time.time() - earlier.get("at", 0) < CLAIM_GRACE_SECONDS:
                # The first request is between its claim and its job record.
                raise IdempotencyConflict(
                    "a request with this Idempotency-Key is still being processed; retry"
                ) from None
            # The first request died after its claim: take the key over.
            with redis_errors_as_unavailable():
                client.delete(claim_key)
    raise QueueUnavailable("could not claim the idempotency key; retry the request")


def release(store: JobStore, claim_key: str) -> None:
    """Give the key up again (its job could not be queued), as far as Redis lets us."""
    with contextlib.suppress(QueueUnavailable), redis_errors_as_unavailable():
        store.client.delete(claim_key)
