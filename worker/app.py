"""The worker's Celery app: thin task shells over plain functions, with a per-process runtime."""

from __future__ import annotations

from typing import Any

import structlog
from celery import Celery, Task
from celery.signals import (
    setup_logging,
    worker_process_init,
    worker_process_shutdown,
    worker_shutting_down,
)

from onnxq.broker.celery_app import (
    CALLBACK_TASK,
    DRIFT_TASK,
    PREDICT_TASK,
    RECONCILE_TASK,
    TIDY_LOG_TASK,
    make_celery,
)
from onnxq.broker.task_message import AWAITED_HEADER
from onnxq.errors import QueueUnavailable
from onnxq.jobs.queue import JobQueue, queue_callback
from onnxq.jobs.record import Job, utc_now
from onnxq.settings import Settings
from onnxq.telemetry import metrics
from onnxq.telemetry.log_retention import tidy_prediction_log
from onnxq.telemetry.logs import configure_logging
from worker.callbacks import CallbackOutcome, callback_delay, deliver_callback
from worker.consumer import CONSUMER
from worker.drift_task import run_drift_check
from worker.job_stream import StopFlag, run_predict, stream_seconds
from worker.reconcile import JobReconciler
from worker.retry import BackoffTask
from worker.runner import JobMessage
from worker.runtime import WorkerRuntime

log = structlog.get_logger("onnxq.worker")

# A drift check of a busy model reads a week of prediction log (about 5 s per million rows).
DRIFT_TIME_LIMIT_SECONDS = 3000


def create_worker_app(settings: Settings) -> Celery:
    """Build the Celery app with its tasks registered and its process hooks connected."""
    app = make_celery(settings, main="onnxq-worker")
    # Loading sessions happens in worker_process_init; give big models time.
    app.conf.worker_proc_alive_timeout = 60
    app.conf.worker_consumer = CONSUMER
    runtime = WorkerRuntime(settings, app)
    stopping = StopFlag()  # made here, in the main process, before the pool forks
    # Every task below is this app's own closure (shared=False): a shared task would be
    # registered on every app made later in the process, which would then run the first
    # app's closures with the first app's runtime and settings.

    def send_callback(job: Job) -> None:
        queue_callback(app, job)  # the job has ended: tell its callback_url, if any

    @app.task(
        name=PREDICT_TASK,
        shared=False,
        bind=True,  # its request holds the message's headers
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
        self: Task,
        job_id: str,
        model: str,
        version: int,
        request_id: str | None = None,
        width: int = 0,
        rows: int = 0,
    ) -> str | None:
        runtime.ensure_started()
        job = run_predict(
            JobMessage(
                job_id,
                model,
                version,
                request_id,
                width,
                rows,
                awaited=bool(self.request.get(AWAITED_HEADER)),
            ),
            runtime.runner(send_callback),
            runtime.drain,
            max_jobs=settings.microbatch_max_jobs,
            chunk_rows=settings.job_chunk_rows,
            linger_seconds=settings.microbatch_linger_ms / 1000,
            stream_seconds=stream_seconds(settings.task_soft_time_limit_seconds),
            stopping=stopping.is_set,
        )
        return job.status.value if job else None

    @app.task(
        name=CALLBACK_TASK, shared=False, bind=True, max_retries=settings.callback_max_attempts - 1
    )
    def callback(self: Task, job_id: str) -> str:
        runtime.ensure_started()
        attempt = self.request.retries
        outcome = deliver_callback(
            job_id,
            store=runtime.store,
            attempt=attempt,
            max_attempts=settings.callback_max_attempts,
            timeout=settings.callback_timeout_seconds,
            destinations=runtime.destinations,
        )
        if outcome is CallbackOutcome.RETRY:
            raise self.retry(countdown=callback_delay(attempt, settings.callback_backoff_seconds))
        return outcome.value

    @app.task(name=RECONCILE_TASK, shared=False, ignore_result=True)
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
        # The blobs of expired jobs go on the same beat; a young one may be a body arriving.
        swept = runtime.store.sweep_blobs(settings.blob_sweep_grace_seconds)
        log.info(
            "reconcile",
            examined=report.examined,
            resent=len(report.resent),
            forgotten=report.forgotten,
            waiting=report.waiting,
            queue_too_long=report.queue_too_long,
            blobs_swept=swept,
        )
        return {"resent": report.resent, "blobs_swept": swept}

    # Reading a week of log takes longer than a prediction job may. The check's message is leased
    # while it runs (onnxq/broker/leases.py), so its limit need not fit in the visibility timeout.
    drift_limit = DRIFT_TIME_LIMIT_SECONDS

    @app.task(
        name=DRIFT_TASK,
        shared=False,
        ignore_result=True,
        soft_time_limit=drift_limit,
        time_limit=drift_limit + 1,
    )
    def drift() -> dict[str, Any]:
        return run_drift_check(settings)

    @app.task(name=TIDY_LOG_TASK, shared=False, ignore_result=True)
    def tidy_log() -> dict[str, Any]:
        report = tidy_prediction_log(
            settings.prediction_log_dir, settings.prediction_log_keep_days, utc_now().date()
        )
        log.info(
            "prediction_log_tidied",
            removed_days=report.removed_days,
            compressed=report.compressed,
            bytes_before=report.bytes_before,
            bytes_after=report.bytes_after,
        )
        return {"removed_days": report.removed_days, "compressed": report.compressed}

    def _start_process(**_: Any) -> None:
        runtime.start()

    def _configure_logging(**_: Any) -> None:
        # Connecting this signal stops Celery from installing its own handlers.
        configure_logging(settings.log_level, process="worker")

    def _end_process(pid: int, **_: Any) -> None:
        metrics.mark_process_dead(pid)

    def _shutting_down(**_: Any) -> None:
        stopping.set()  # running predict tasks finish their batch and take no more

    worker_process_init.connect(_start_process, weak=False)
    worker_process_shutdown.connect(_end_process, weak=False)
    worker_shutting_down.connect(_shutting_down, weak=False)
    setup_logging.connect(_configure_logging, weak=False)
    app.onnxq_runtime = runtime  # type: ignore[attr-defined]
    return app
