"""Brokers for tests that must not reach a real Redis."""

from __future__ import annotations

from celery import Celery

from onnxq.broker.celery_app import make_celery
from onnxq.settings import Settings

# A port nothing listens on: unit tests must never reach a real Redis by accident.
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def in_memory_celery(settings: Settings) -> Celery:
    """onnxq's Celery app on kombu's in-memory broker: for tests that only send."""
    app = make_celery(settings)
    app.conf.broker_url = "memory://"
    app.conf.broker_transport = None  # let the URL choose, not onnxq's Redis transport
    return app
