"""The gateway's submit path, and every message onnxq sends about a job (by task name only)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from celery import Celery
from kombu.exceptions import OperationalError

from onnxq.broker.celery_app import CALLBACK_TASK, PREDICT_TASK
from onnxq.broker.task_message import AWAITED_HEADER, encode_task
from onnxq.errors import QueueUnavailable
from onnxq.jobs import idempotency, keys, lifecycle
from onnxq.jobs.blobs import ROWS
from onnxq.jobs.new_rows import RowsInBlob
from onnxq.jobs.record import Job, JobStatus, utc_now
from onnxq.jobs.store import JobStore
from onnxq.models.tensors import stored_bytes, stored_width
from onnxq.telemetry import metrics

log = structlog.get_logger("onnxq.queue")


def new_job_id() -> str:
    """32 random hexadecimal digits: the randomness of a uuid4 without building a UUID."""
    return os.urandom(16).hex()


@dataclass(frozen=True)
class Submission:
    """What a submit produced: the job, and whether it is an idempotent replay of an earlier one."""

    job: Job
    replayed: bool = False


def predict_message(job: Job, width: int, rows: int) -> dict[str, Any]:
    """The predict task's keyword arguments: the job, and the shape of its stored rows.

    The rows themselves stay in Redis beside the record (keys.rows): the message is
    small, and nobody parses the rows as JSON again.
    """
    return {
        "job_id": job.job_id,
        "model": job.model,
        "version": job.version,
        "request_id": job.request_id,
        "width": width,
        "rows": rows,
    }


def predict_headers(job: Job) -> dict[str, Any] | None:
    """The predict message's own headers: whether a client waits for the job in its request
    (its batch then takes the short micro-batch wait, worker/batching.py)."""
    return {AWAITED_HEADER: True} if job.notify else None


def send_task(
    celery: Celery,
    task: str,
    kwargs: dict[str, Any],
    task_id: str | None = None,
    headers: dict[str, Any] | None = None,
) -> None:
    """Publish a task by name; QueueUnavailable when the broker cannot take it."""
    try:
        # argsrepr/kwargsrepr: Celery would otherwise saferepr the whole payload.
        celery.send_task(
            task,
            kwargs=kwargs,
            task_id=task_id,
            ignore_result=True,
            headers=headers,
            argsrepr="()",
            kwargsrepr=f"{{job_id: {kwargs.get('job_id')}}}",
        )
    except (OperationalError, OSError) as exc:
        raise QueueUnavailable(f"the job queue is unreachable: {exc}") from exc


def queue_callback(celery: Celery, job: Job) -> None:
    """Queue the callback of a job that has ended, if it asked for one.

    Never raises: the job's outcome stands, and only its notification is lost (and said so).
    """
    if not job.callback_url:
        return
    try:
        send_task(celery, CALLBACK_TASK, {"job_id": job.job_id})
    except QueueUnavailable as exc:
        log.error("callback_not_queued", job_id=job.job_id, error=repr(exc))


class JobQueue:
    """Records a job and sends it to the workers by task name.

    With `broker_is_store` (production: the broker and the job store are the same Redis), the
    record, rows and message go in one transaction (onnxq/broker/task_message.py); otherwise
    (unit tests' in-memory broker) the message is sent through Celery after the record.
    """

    def __init__(self, celery: Celery, store: JobStore, *, broker_is_store: bool = False):
        self.celery = celery
        self.store = store
        self.broker_is_store = broker_is_store

    def submit(
        self,
        *,
        model: str,
        version: int,
        matrix: np.ndarray | RowsInBlob,
        request_id: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        idempotency_scope: str = "",
        fingerprint: str = "",
        job_id: str | None = None,
        notify: str | None = None,
    ) -> Submission:
        """Queue a job of validated rows (under `job_id` if given: a caller may wait for it
        before it exists, its end announced on `notify`); with an idempotency key, the same key
        and body return the first job. Rows already in the blob store (a large file job's) are
        the job's under their id; removed if the submit does not use them."""
        if isinstance(matrix, RowsInBlob):
            job_id, rows = matrix.job_id, matrix.rows
        else:
            # A tabular model's float32 matrix, or a tensor model's records (onnxq.models.tensors).
            matrix = np.ascontiguousarray(matrix, dtype=None if matrix.dtype.names else np.float32)
            rows = len(matrix)
        job = Job(
            job_id=job_id or new_job_id(),
            status=JobStatus.QUEUED,
            model=model,
            version=version,
            rows=rows,
            rows_in_blob=isinstance(matrix, RowsInBlob),
            request_id=request_id,
            submitted_at=utc_now(),
            callback_url=callback_url,
            notify=notify,
        )
        claim_key = None
        if idempotency_key is not None:
            claim_key = keys.idempotency(idempotency_scope, idempotency_key)
            earlier = idempotency.claim(self.store, claim_key, job.job_id, fingerprint)
            if earlier is not None:
                if job.rows_in_blob and self.store.blobs is not None:
                    self.store.blobs.delete(job.job_id, ROWS)  # this job will not be
                return Submission(earlier, replayed=True)
        try:
            self._enqueue(job, matrix)
        except QueueUnavailable:
            if claim_key is not None:
                idempotency.release(self.store, claim_key)
            raise
        metrics.job_submitted(model)
        return Submission(job)

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job (a worker that later receives it skips it)."""
        job = self.store.update(job_id, lifecycle.cancel)
        queue_callback(self.celery, job)
        return job

    def resend(self, job: Job, width: int | None) -> None:
        """Send a recorded job's message again (the reconciler's repair of a lost message).

        `width` is the stored matrix's row width; without rows the worker fails
        the job as `inputs_missing` rather than leaving it queued.
        """
        message = predict_message(job, width or 0, job.rows)
        send_task(self.celery, PREDICT_TASK, message, job.job_id, predict_headers(job))

    def _enqueue(self, job: Job, matrix: np.ndarray | RowsInBlob) -> None:
        if isinstance(matrix, RowsInBlob):
            message = predict_message(job, matrix.width, matrix.rows)
            rows = None  # the store has them (the record says rows_in_blob)
        else:
            message = predict_message(job, stored_width(matrix), int(matrix.shape[0]))
            rows = stored_bytes(matrix)
        headers = predict_headers(job)
        if self.broker_is_store:
            queue = self.celery.conf.task_default_queue  # where the predict task is routed
            encoded = encode_task(self.celery, PREDICT_TASK, message, job.job_id, queue, headers)
            self.store.create(job, rows, message=encoded)
            return
        self.store.create(job, rows)
        try:
            send_task(self.celery, PREDICT_TASK, message, task_id=job.job_id, headers=headers)
        except QueueUnavailable:
            # No half-written job: the record goes if the message could not.
            with contextlib.suppress(QueueUnavailable):
                self.store.delete(job.job_id)
            raise
