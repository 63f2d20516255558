"""Per-process worker state, created after fork so no ONNX session crosses a fork."""

from __future__ import annotations

import os
from collections.abc import Callable

import structlog
from celery import Celery

from onnxq.broker.redis_client import connect_redis
from onnxq.destinations import DestinationPolicy
from onnxq.jobs import keys
from onnxq.jobs.blobs import DirectoryBlobs
from onnxq.jobs.record import Job
from onnxq.jobs.store import JobStore
from onnxq.models.repository import ModelRepository
from onnxq.models.session import SessionConfig
from onnxq.settings import Settings
from onnxq.telemetry.prediction_log import PredictionLog
from worker.batching import QueueDrain
from worker.runner import JobRunner

log = structlog.get_logger("onnxq.worker")


class WorkerRuntime:
    """The repository, job store and prediction log one worker process uses."""

    def __init__(self, settings: Settings, app: Celery):
        self.settings = settings
        self.app = app
        self.destinations = DestinationPolicy.parse(settings.outbound_allow)
        self.pid: int | None = None
        self.repository: ModelRepository
        self.store: JobStore
        self.prediction_log: PredictionLog

    def start(self) -> None:
        """Open Redis and load every model's default version in this process."""
        settings = self.settings
        self.repository = ModelRepository(
            settings.model_dir,
            SessionConfig(settings.ort_intra_op_threads, settings.ort_inter_op_threads),
        )
        client = connect_redis(settings.redis_url, socket_timeout=5)
        self.store = JobStore(
            client,
            ttl_seconds=settings.job_ttl_seconds,
            blobs=DirectoryBlobs(settings.blob_root),
            inline_rows=settings.job_inline_result_rows,
        )
        self.prediction_log = PredictionLog(settings.prediction_log_dir)
        self.drain = QueueDrain(
            self.app,
            settings.queue_name,
            settings.microbatch_wait_ms,
            read_prefixes=(keys.JOB_PREFIX, keys.ROWS_PREFIX),  # the store is the broker's Redis
            queued_wait_ms=settings.microbatch_queued_wait_ms,
        )
        loaded = self.repository.load_defaults()
        self.pid = os.getpid()
        log.info(
            "worker_process_ready",
            pid=self.pid,
            models=[f"{model.name}/{model.version}" for model in loaded],
            intra_op_threads=settings.ort_intra_op_threads,
        )

    def runner(self, on_end: Callable[[Job], None] | None = None) -> JobRunner:
        settings = self.settings
        return JobRunner(
            self.repository,
            self.store,
            self.prediction_log,
            max_attempts=settings.job_max_attempts,
            chunk_rows=settings.job_chunk_rows,
            chunk_threads=settings.job_chunk_threads,
            inline_result_rows=settings.job_inline_result_rows,
            on_end=on_end,
        )

    def ensure_started(self) -> None:
        """Start lazily in pools that never fire worker_process_init (solo, threads)."""
        if self.pid != os.getpid():
            self.start()
