"""The Celery app both sides share, with every delivery setting in one place.

docs/reliability.md says why each setting has the value it has.
"""

from __future__ import annotations

from urllib.parse import urlparse

from celery import Celery

from onnxq.broker.redis_transport import TRANSPORT
from onnxq.settings import Settings

PREDICT_TASK = "onnxq.predict"
CALLBACK_TASK = "onnxq.callback"
RECONCILE_TASK = "onnxq.reconcile"
DRIFT_TASK = "onnxq.drift"
TIDY_LOG_TASK = "onnxq.tidy_prediction_log"
# How long kombu's restore sweep may hold its lock (see make_celery).
RESTORE_LOCK_SECONDS = 5


def callback_queue(settings: Settings) -> str:
    return f"{settings.queue_name}.callbacks"


def broker_transport(url: str) -> str | None:
    """onnxq's fixed Redis transport for redis:// and rediss:// URLs; otherwise the URL decides."""
    return TRANSPORT if urlparse(url).scheme in {"redis", "rediss"} else None


def make_celery(settings: Settings, main: str = "onnxq") -> Celery:
    """Build a Celery app configured for onnxq; the worker registers tasks on it."""
    app = Celery(main, broker=settings.redis_url, backend=settings.redis_url)
    transport = {
        "visibility_timeout": settings.visibility_timeout_seconds,
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
        "retry_on_timeout": True,
        "health_check_interval": 10,
    }
    app.conf.update(
        # kombu's Redis transport plus a fix that keeps a worker alive when Redis
        # restarts while it holds an unacknowledged job (onnxq/broker/redis_transport.py).
        broker_transport=broker_transport(settings.redis_url),
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        # Job state and results live in the JobStore (onnxq.jobs.store); the backend is
        # kept for Celery's own use and expires with the jobs.
        task_ignore_result=True,
        result_expires=settings.job_ttl_seconds,
        task_default_queue=settings.queue_name,
        task_routes={
            PREDICT_TASK: {"queue": settings.queue_name},
            # A slow callback receiver must never sit in front of predictions.
            CALLBACK_TASK: {"queue": callback_queue(settings)},
            # Housekeeping shares that side queue, for the same reason.
            RECONCILE_TASK: {"queue": callback_queue(settings)},
            # A drift check reads a week of log: never in front of predictions either.
            DRIFT_TASK: {"queue": callback_queue(settings)},
            # Gzipping a day of log takes seconds: the side queue as well.
            TIDY_LOG_TASK: {"queue": callback_queue(settings)},
        },
        # At-least-once: acknowledge after running, give the job back when the
        # process running it dies, and reserve one message at a time.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A hard time limit kill requeues the message rather than acknowledging it:
        # the job's attempt counter then decides (poison_job).
        task_acks_on_failure_or_timeout=False,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options={
            **transport,
            # kombu sweeps for unacked messages of dead consumers only every
            # interval x throttle seconds (100 s by default): make it ~the timeout.
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_seconds // 2)),
            "unacked_restore_throttle": 1,
            # The sweep holds a Redis lock while it restores; a worker killed inside it left the
            # lock for kombu's 300 s, and no other worker swept meanwhile (its dead messages
            # stayed unacknowledged). Two sweeps at once are safe (each restore is a WATCHed
            # transaction), so the lock only needs to outlive one sweep.
            "unacked_mutex_expire": RESTORE_LOCK_SECONDS,
        },
        result_backend_transport_options=transport,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_time_limit=settings.task_time_limit_seconds,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # Fail a submit fast when Redis is down instead of hanging the request.
        broker_connection_timeout=2,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        timezone="UTC",
        enable_utc=True,
    )
    return app
