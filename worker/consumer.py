"""Celery's consumer, reconnecting to Redis every second instead of backing off to 30 s.

kombu's default reconnect schedule sleeps 2, 4, 6 ... up to 30 s between
attempts, so after a long Redis outage a worker could sit idle for half a
minute after Redis was back. onnxq promises work flows again within 5 s; a
connection attempt against a down Redis is one refused TCP connect, so trying
every second costs nothing.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

CONSUMER = "worker.consumer:Consumer"
RECONNECT_INTERVAL_SECONDS = 1.0


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """The Celery consumer with a flat one-second broker reconnect interval."""

    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = partial(
            conn.ensure_connection,
            interval_start=RECONNECT_INTERVAL_SECONDS,
            interval_step=0,
            interval_max=RECONNECT_INTERVAL_SECONDS,
        )
        return super().ensure_connected(conn)
