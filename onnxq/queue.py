"""The Celery app both sides share, and the submit path the gateway uses (by task name only)."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from onnxq.errors import QueueUnavailable
from onnxq.jobs import Job, JobStatus, JobStore, utc_now
from onnxq.settings import Settings

PREDICT_TASK = "onnxq.predict"


def make_celery(settings: Settings, main: str = "onnxq") -> Celery:
    """Build a Celery app configured for onnxq; the worker registers tasks on it."""
    app = Celery(main, broker=settings.redis_url, backend=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        # Job state and results live in the JobStore (see onnxq.jobs); the
        # Celery result backend would only hold a second copy.
        task_ignore_result=True,
        task_default_queue=settings.queue_name,
        task_routes={PREDICT_TASK: {"queue": settings.queue_name}},
        # A crashed worker must not lose the job: acknowledge after running.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # Fail a submit fast when Redis is down instead of hanging the request.
        broker_connection_timeout=2,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        timezone="UTC",
        enable_utc=True,
    )
    return app


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobQueue:
    """Records a job, then sends it to the workers by task name."""

    def __init__(self, celery: Celery, store: JobStore):
        self.celery = celery
        self.store = store

    def submit(
        self,
        *,
        model: str,
        version: int,
        instances: list[list[float]],
        request_id: str | None = None,
    ) -> Job:
        job = Job(
            job_id=new_job_id(),
            status=JobStatus.QUEUED,
            model=model,
            version=version,
            rows=len(instances),
            request_id=request_id,
            submitted_at=utc_now(),
        )
        self.store.create(job)
        payload: dict[str, Any] = {
            "job_id": job.job_id,
            "model": model,
            "version": version,
            "instances": instances,
            "request_id": request_id,
        }
        try:
            self.celery.send_task(
                PREDICT_TASK, kwargs=payload, task_id=job.job_id, ignore_result=True
            )
        except (OperationalError, OSError) as exc:
            # No half-written job: the record goes if the message could not.
            with contextlib.suppress(QueueUnavailable):
                self.store.delete(job.job_id)
            raise QueueUnavailable(f"the job queue is unreachable: {exc}") from exc
        return job
