"""The objects every view needs, built once per gunicorn worker process by `init_app`."""

from __future__ import annotations

from dataclasses import dataclass

import redis
import structlog
from celery import Celery
from flask import Flask, current_app

from onnxq.broker.celery_app import make_celery
from onnxq.broker.redis_client import connect_redis
from onnxq.destinations import DestinationPolicy
from onnxq.errors import OnnxqError
from onnxq.jobs.blobs import DirectoryBlobs, JobBlobs
from onnxq.jobs.queue import JobQueue
from onnxq.jobs.store import JobStore
from onnxq.jobs.waiting import JobWaiter, listener_client
from onnxq.models.repository import ModelRepository
from onnxq.models.session import SessionConfig
from onnxq.settings import Settings
from onnxq.telemetry.prediction_log import PredictionLog

log = structlog.get_logger("onnxq.gateway")

# Redis connections per gateway process: a Redis call takes ~0.1 ms, so a few dozen serve
# hundreds of concurrent requests; more would only add connections for Redis to juggle.
GATEWAY_REDIS_CONNECTIONS = 32


@dataclass
class Services:
    settings: Settings
    repository: ModelRepository
    redis: redis.Redis
    jobs: JobStore
    # Large job data (onnxq/jobs/blobs.py): file uploads here, rows and results through `jobs`.
    blobs: JobBlobs
    queue: JobQueue
    prediction_log: PredictionLog
    waiter: JobWaiter
    destinations: DestinationPolicy

    def load_models(self) -> bool:
        """Load every model's default version; return whether all of them are ready."""
        try:
            loaded = self.repository.load_defaults()
        except OnnxqError as exc:
            log.error("model_load_failed", error=exc.message)
            return False
        if not loaded:
            log.warning("no_models", model_dir=str(self.repository.root))
        return self.repository.ready

    def redis_ready(self) -> bool:
        try:
            return bool(self.redis.ping())
        except (redis.RedisError, OSError):  # incl. error replies such as DENIED or LOADING
            return False


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    given = app.config.get("REDIS_CLIENT")
    # One pool per process, shared by every request (greenlet) that touches the job store.
    client = given or connect_redis(settings.redis_url, max_connections=GATEWAY_REDIS_CONNECTIONS)
    celery: Celery = app.config.get("CELERY_APP") or make_celery(settings, main="onnxq-gateway")
    blobs = DirectoryBlobs(settings.blob_root)
    store = JobStore(
        client,
        ttl_seconds=settings.job_ttl_seconds,
        blobs=blobs,
        inline_rows=settings.job_inline_result_rows,
    )
    services = Services(
        settings=settings,
        repository=ModelRepository(
            settings.model_dir,
            SessionConfig(settings.ort_intra_op_threads, settings.ort_inter_op_threads),
        ),
        redis=client,
        jobs=store,
        blobs=blobs,
        # Built here from the one redis_url: the broker and the store are the same Redis.
        queue=JobQueue(
            celery, store, broker_is_store=given is None and "CELERY_APP" not in app.config
        ),
        prediction_log=PredictionLog(settings.prediction_log_dir),
        # Tests hand in a fakeredis client: its pub/sub is the same fake server's.
        waiter=JobWaiter(
            (lambda: given) if given is not None else (lambda: listener_client(settings.redis_url))
        ),
        destinations=DestinationPolicy.parse(settings.outbound_allow),
    )
    app.extensions["onnxq"] = services
    services.load_models()


def current_services() -> Services:
    return current_app.extensions["onnxq"]  # type: ignore[no-any-return]
