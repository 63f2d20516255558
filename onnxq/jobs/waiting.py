"""Waiting for jobs to end, woken by Redis pub/sub: what `?wait=` and `Prefer: wait` are built on.

Whatever ends a job (the worker storing outcomes, a cancel, a poison claim) publishes its id on
`keys.JOBS_ENDED` in the same round trip as the final state (onnxq/jobs/store.py). Each gateway
process keeps ONE subscription to that channel, read by one listener thread, and wakes the requests
waiting on that id. A waiter registers before it reads the record, so a job that ends between the
read and the wait still wakes it. Nothing polls Redis in a loop; a lost subscription (Redis
restarting) wakes every waiter so that each reads its record again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import redis
import structlog

from onnxq.jobs import keys
from onnxq.jobs.record import Job
from onnxq.jobs.store import JobStore
from onnxq.telemetry import metrics

log = structlog.get_logger("onnxq.waiting")

RECONNECT_SECONDS = 1.0
LISTEN_SECONDS = 5.0


def listener_client(url: str) -> redis.Redis:
    """The subscription's own connection: fails fast on connect, checks itself when idle."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=1, socket_timeout=LISTEN_SECONDS * 2, health_check_interval=15
    )


class JobWaiter:
    """Wakes threads (or greenlets, under gevent) waiting for particular jobs to end."""

    def __init__(self, client_factory: Callable[[], redis.Redis]):
        self._client_factory = client_factory
        self._lock = threading.Lock()
        self._waiting: dict[str, list[threading.Event]] = {}
        self._listener: threading.Thread | None = None
        self._subscribed = threading.Event()

    @contextlib.contextmanager
    def registered(self, job_id: str) -> Iterator[threading.Event]:
        """An event set when `job_id` ends; register first, then read the record, then wait."""
        self._ensure_listener()
        event = threading.Event()
        with self._lock:
            self._waiting.setdefault(job_id, []).append(event)
        metrics.job_waiter_added()
        try:
            yield event
        finally:
            metrics.job_waiter_left()
            with self._lock:
                events = self._waiting.get(job_id, [])
                if event in events:
                    events.remove(event)
                if not events:
                    self._waiting.pop(job_id, None)

    def until_ended(self, store: JobStore, job_id: str, seconds: float) -> Job:
        """The job once it has ended, or as it stands after `seconds`, whichever comes first."""
        deadline = time.monotonic() + seconds
        with self.registered(job_id) as ended:
            job = store.get(job_id)
            while not job.status.ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not ended.wait(remaining):
                    break
                ended.clear()
                job = store.get(job_id)
        return job

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until the listener's subscription is in place (start-up, tests)."""
        self._ensure_listener()
        return self._subscribed.wait(timeout)

    def waiting(self) -> int:
        with self._lock:
            return sum(len(events) for events in self._waiting.values())

    def _ensure_listener(self) -> None:
        if self._listener is not None and self._listener.is_alive():
            return
        with self._lock:
            if self._listener is None or not self._listener.is_alive():
                self._listener = threading.Thread(
                    target=self._listen, name="onnxq-job-waiter", daemon=True
                )
                self._listener.start()

    def _listen(self) -> None:
        while True:
            pubsub = None
            try:
                pubsub = self._client_factory().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(keys.JOBS_ENDED)
                self._subscribed.set()
                # Anything that ended while we were not subscribed: let every waiter look again.
                self._wake_all()
                while True:
                    # A bounded read: the client's health check (a PING when idle) runs between
                    # reads, so a connection that died silently is noticed.
                    message = pubsub.get_message(timeout=LISTEN_SECONDS)
                    if message is not None and message.get("type") == "message":
                        self._wake(_text(message["data"]))
            except (redis.RedisError, OSError) as exc:
                log.warning("job_waiter_disconnected", error=repr(exc))
            finally:
                self._subscribed.clear()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
            self._wake_all()
            time.sleep(RECONNECT_SECONDS)

    def _wake(self, job_id: str) -> None:
        with self._lock:
            events = list(self._waiting.get(job_id, ()))
        for event in events:
            event.set()

    def _wake_all(self) -> None:
        with self._lock:
            events = [event for group in self._waiting.values() for event in group]
        for event in events:
            event.set()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
