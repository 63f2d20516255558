"""Per-process worker state, created after fork so no ONNX session crosses a fork."""

from __future__ import annotations

import os

import structlog

from onnxq.jobs import JobStore, connect_redis
from onnxq.model import SessionConfig
from onnxq.prediction_log import PredictionLog
from onnxq.repository import ModelRepository
from onnxq.settings import Settings

log = structlog.get_logger("onnxq.worker")


class WorkerRuntime:
    """The repository, job store and prediction log one worker process uses."""

    def __init__(self, settings: Settings):
        self.settings = settings
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
        self.store = JobStore(client, ttl_seconds=settings.job_ttl_seconds)
        self.prediction_log = PredictionLog(settings.prediction_log_dir)
        loaded = self.repository.load_defaults()
        self.pid = os.getpid()
        log.info(
            "worker_process_ready",
            pid=self.pid,
            models=[f"{model.name}/{model.version}" for model in loaded],
            intra_op_threads=settings.ort_intra_op_threads,
        )

    def ensure_started(self) -> None:
        """Start lazily in pools that never fire worker_process_init (solo, threads)."""
        if self.pid != os.getpid():
            self.start()
