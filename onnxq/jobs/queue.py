"""The Celery app both sides share, and the submit path the gateway uses (by task name only)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from celery import Celery
from kombu.exceptions import OperationalError

from onnxq.broker.celery_app import CALLBACK_TASK, PREDICT_TASK
from onnxq.broker.redis_client import redis_errors_as_unavailable
from onnxq.errors import IdempotencyConflict, JobNotFound, QueueUnavailable
from onnxq.jobs.store import Job, JobStatus, JobStore, utc_now
from onnxq.telemetry import metrics

log = structlog.get_logger("onnxq.queue")

# How long a claimed idempotency key without a job record counts as in progress.
CLAIM_GRACE_SECONDS = 10.0


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Submission:
    """What a submit produced: the job, and whether it is an idempotent replay of an earlier one."""

    job: Job
    replayed: bool = False


class JobQueue:
    """Records a job, then sends it to the workers by task name."""

    idempotency_prefix = "onnxq:idempotency:"

    def __init__(self, celery: Celery, store: JobStore):
        self.celery = celery
        self.store = store

    def submit(
        self,
        *,
        model: str,
        version: int,
        instances: list[Any] | np.ndarray,
        request_id: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        idempotency_scope: str = "",
        fingerprint: str = "",
    ) -> Submission:
        """Queue a job; with an idempotency key, the same key and body return the first job."""
        job = Job(
            job_id=new_job_id(),
            status=JobStatus.QUEUED,
            model=model,
            version=version,
            rows=len(instances),
            request_id=request_id,
            submitted_at=utc_now(),
            callback_url=callback_url,
        )
        claim_key = None
        if idempotency_key is not None:
            claim_key = self._claim_key(idempotency_scope, idempotency_key)
            earlier = self._claim(claim_key, job.job_id, fingerprint)
            if earlier is not None:
                return Submission(earlier, replayed=True)
        try:
            self._enqueue(job, instances)
        except QueueUnavailable:
            if claim_key is not None:
                with contextlib.suppress(QueueUnavailable), redis_errors_as_unavailable():
                    self.store.client.delete(claim_key)
            raise
        metrics.job_submitted(model)
        return Submission(job)

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job (a worker that later receives it skips it)."""
        job = self.store.cancel(job_id)
        if job.callback_url:
            try:
                self._send(CALLBACK_TASK, {"job_id": job.job_id})
            except QueueUnavailable as exc:
                # The cancel stands; only its notification is lost, and said so.
                log.error("callback_not_queued", job_id=job.job_id, error=repr(exc))
        return job

    def resend(self, job: Job, width: int | None) -> None:
        """Send a recorded job's message again (the reconciler's repair of a lost message).

        `width` is the stored matrix's row width; without rows the worker fails
        the job as `inputs_missing` rather than leaving it queued.
        """
        payload = self._payload(job)
        payload["width"], payload["rows"] = width or 0, job.rows
        self._send(PREDICT_TASK, payload, task_id=job.job_id)

    @staticmethod
    def _payload(job: Job) -> dict[str, Any]:
        return {
            "job_id": job.job_id,
            "model": job.model,
            "version": job.version,
            "request_id": job.request_id,
        }

    def _enqueue(self, job: Job, instances: list[Any] | np.ndarray) -> None:
        payload = self._payload(job)
        if isinstance(instances, np.ndarray):
            # Validated float32 rows travel as bytes beside the job record: the
            # message stays tiny, and nobody parses the rows as JSON again.
            matrix = np.ascontiguousarray(instances, dtype=np.float32)
            self.store.create(job, matrix.tobytes())
            payload["width"], payload["rows"] = int(matrix.shape[1]), int(matrix.shape[0])
        else:
            self.store.create(job)
            payload["instances"] = instances
        try:
            self._send(PREDICT_TASK, payload, task_id=job.job_id)
        except QueueUnavailable:
            # No half-written job: the record goes if the message could not.
            with contextlib.suppress(QueueUnavailable):
                self.store.delete(job.job_id)
            raise

    def _send(self, task: str, kwargs: dict[str, Any], task_id: str | None = None) -> None:
        """Publish a task by name; QueueUnavailable when the broker cannot take it."""
        try:
            # argsrepr/kwargsrepr: Celery would otherwise saferepr the whole payload.
            self.celery.send_task(
                task,
                kwargs=kwargs,
                task_id=task_id,
                ignore_result=True,
                argsrepr="()",
                kwargsrepr=f"{{job_id: {kwargs.get('job_id')}}}",
            )
        except (OperationalError, OSError) as exc:
            raise QueueUnavailable(f"the job queue is unreachable: {exc}") from exc

    def _claim_key(self, scope: str, idempotency_key: str) -> str:
        # Keys are per client (scope), hashed: they may be long or odd, and never land
        # in Redis as sent.
        digest = hashlib.sha256(f"{scope}\0{idempotency_key}".encode()).hexdigest()
        return self.idempotency_prefix + digest

    def _claim(self, claim_key: str, job_id: str, fingerprint: str) -> Job | None:
        """Claim the key for `job_id`; return the earlier job if the key was already used."""
        value = json.dumps({"job_id": job_id, "fingerprint": fingerprint, "at": time.time()})
        for _ in range(3):
            with redis_errors_as_unavailable():
                if self.store.client.set(claim_key, value, nx=True, ex=self.store.ttl_seconds):
                    return None
                raw = self.store.client.get(claim_key)
            if raw is None:
                continue  # expired between SET and GET: try to claim again
            earlier = json.loads(raw)
            if earlier["fingerprint"] != fingerprint:
                raise IdempotencyConflict(
                    "this Idempotency-Key was used with a different request body"
                )
            try:
                return self.store.get(earlier["job_id"])
            except JobNotFound:
                if time.time() - earlier.get("at", 0) < CLAIM_GRACE_SECONDS:
                    # The first request is between its claim and its job record.
                    raise IdempotencyConflict(
                        "a request with this Idempotency-Key is still being processed; retry"
                    ) from None
                # The first request died after its claim: take the key over.
                with redis_errors_as_unavailable():
                    self.store.client.delete(claim_key)
        raise QueueUnavailable("could not claim the idempotency key; retry the request")
