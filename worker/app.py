"""The worker's Celery app: thin task shells over worker.jobs, wired to a per-process runtime."""

from __future__ import annotations

from typing import Any

import structlog
from celery import Celery, Task
from celery.signals import setup_logging, worker_process_init, worker_process_shutdown
from kombu.exceptions import OperationalError

from onnxq.broker.celery_app import (
    CALLBACK_TASK,
    DRIFT_TASK,
    PREDICT_TASK,
    RECONCILE_TASK,
    make_celery,
)
from onnxq.errors import QueueUnavailable
from onnxq.jobs.queue import JobQueue
from onnxq.jobs.store import Job, utc_now
from onnxq.settings import Settings
from onnxq.telemetry import metrics
from onnxq.telemetry.logs import configure_logging
from worker.batching import settle
from worker.callbacks import CallbackOutcome, callback_delay, deliver_callback
from worker.consumer import CONSUMER
from worker.drift_task import run_drift_check
from worker.jobs import JobMessage
from worker.reconcile import JobReconciler
from worker.retry import BackoffTask
from worker.runtime import WorkerRuntime

log = structlog.get_logger("onnxq.worker")


def create_worker_app(settings: Settings) -> Celery:
    """Build the Celery app with its tasks registered and its process hooks connected."""
    app = make_celery(settings, main="onnxq-worker")
    # Loading sessions happens in worker_process_init; give big models time.
    app.conf.worker_proc_alive_timeout = 60
    app.conf.worker_consumer = CONSUMER
    runtime = WorkerRuntime(settings, app)

    def send_callback(job: Job) -> None:
        if not job.callback_url:
            return
        try:
            app.send_task(CALLBACK_TASK, kwargs={"job_id": job.job_id}, ignore_result=True)
        except (OperationalError, OSError) as exc:
            # The job's result is stored; only its notification is lost, and said so.
            log.error("callback_not_queued", job_id=job.job_id, error=repr(exc))

    @app.task(
        name=PREDICT_TASK,
        # Redis unreachable or timing out: retry later, a bounded number of times, after
        # onnxq.backoff's delay (1, 2, 4 … at most 30 s, full jitter; worker/retry.py).
        autoretry_for=(QueueUnavailable,),
        base=BackoffTask,
        backoff_base=1,
        backoff_cap=30,
        backoff_jitter=True,
        max_retries=settings.transient_retry_max,
    )
    def predict(
        job_id: str,
        model: str,
        version: int,
        instances: list[Any] | None = None,
        request_id: str | None = None,
        width: int | None = None,
        rows: int | None = None,
    ) -> str | None:
        runtime.ensure_started()
        first = JobMessage(job_id, model, version, instances, request_id, width, rows)
        small = first.row_count is None or first.row_count < settings.job_chunk_rows
        extras = runtime.drain.take(settings.microbatch_max_jobs - 1) if small else []
        try:
            outcomes = runtime.runner(send_callback).run([first, *(job for job, _ in extras)])
        except BaseException:
            settle([message for _, message in extras], ok=False)
            raise
        settle([message for _, message in extras], ok=True)
        job = outcomes[job_id]
        return job.status.value if job else None

    @app.task(name=CALLBACK_TASK, bind=True, max_retries=settings.callback_max_attempts - 1)
    def callback(self: Task, job_id: str) -> str:
        runtime.ensure_started()
        attempt = self.request.retries
        outcome = deliver_callback(
            job_id,
            store=runtime.store,
            attempt=attempt,
            max_attempts=settings.callback_max_attempts,
            timeout=settings.callback_timeout_seconds,
        )
        if outcome is CallbackOutcome.RETRY:
            raise self.retry(countdown=callback_delay(attempt, settings.callback_backoff_seconds))
        return outcome.value

    @app.task(name=RECONCILE_TASK, ignore_result=True)
    def reconcile() -> dict[str, Any]:
        runtime.ensure_started()
        queue = JobQueue(app, runtime.store)
        report = JobReconciler(
            runtime.store,
            queue,
            queue_names=[settings.queue_name],
            stale_seconds=settings.reconcile_stale_seconds,
            time_limit_seconds=settings.task_time_limit_seconds,
        ).run(utc_now())
        log.info(
            "reconcile",
            examined=report.examined,
            resent=len(report.resent),
            forgotten=report.forgotten,
            waiting=report.waiting,
            queue_too_long=report.queue_too_long,
        )
        return {"resent": report.resent}

    # Reading a week of log takes longer than a prediction job may; stay below the
    # visibility timeout so that Redis does not hand a running check to a second worker.
    drift_limit = int(settings.visibility_timeout_seconds * 0.8)

    @app.task(
        name=DRIFT_TASK, ignore_result=True, soft_time_limit=drift_limit, time_limit=drift_limit + 1
    )
    def drift() -> dict[str, Any]:
        return run_drift_check(settings)

    def _start_process(**_: Any) -> None:
        runtime.start()

    def _configure_logging(**_: Any) -> None:
        # Connecting this signal stops Celery from installing its own handlers.
        configure_logging(settings.log_level, process="worker")

    def _end_process(pid: int, **_: Any) -> None:
        metrics.mark_process_dead(pid)

    worker_process_init.connect(_start_process, weak=False)
    worker_process_shutdown.connect(_end_process, weak=False)
    setup_logging.connect(_configure_logging, weak=False)
    app.onnxq_runtime = runtime  # type: ignore[attr-defined]
    return app
