"""Waiting for jobs to end, woken by Redis pub/sub: what `?wait=` and `Prefer: wait` are built on.

Whatever ends a job (the worker storing outcomes, a cancel, a poison claim) announces it in the
same script or transaction as the final state (onnxq/jobs/store.py), to whoever waits: each
gateway process has a channel of its own (keys.waiter_channel), and a `Prefer: wait` submit names
it in the job's record (`notify`), so the end of a job wakes the one process whose request waits
for it, not every gateway process. A waiting poll (`?wait=`) may arrive at any process: a job
it finds still running it marks watched (keys.watched) by its process in a second read, and a
watched job's end is announced on that process's channel too (on the shared keys.JOBS_ENDED when
polls of several processes watch it). Each process keeps ONE subscription to both channels, read
by one listener thread, and wakes the requests waiting on that id. A waiter registers before it
reads the record, so a job that ends between the read and the wait still wakes it (or registers
before it creates the job: the submit with `Prefer: wait`). The message carries the job's final
record when it is small, and the woken request answers from it without reading the record back.
Nothing polls Redis in a loop; a lost subscription (Redis restarting) wakes every waiter so that
each reads its record again.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis
import structlog

from onnxq.jobs import keys
from onnxq.jobs.record import Job, load_job
from onnxq.jobs.scripts import parse_ended_message
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


class Waiting:
    """One request waiting for one or more jobs: set when one of them ends, with the final
    records the announcements carried (`None` for a job announced by id alone)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()  # the listener thread wakes, the request's thread waits
        self._ended: dict[str, bytes | None] = {}
        self._everything = False

    def wake(self, job_id: str, record: bytes | None) -> None:
        with self._lock:
            if record is not None or job_id not in self._ended:
                self._ended[job_id] = record
        self._event.set()

    def wake_all(self) -> None:
        """Announcements may have been missed (a new subscription): every job is to be read."""
        with self._lock:
            self._everything = True
        self._event.set()

    def wait(self, seconds: float) -> Wakeup | None:
        """What woke it, or None after `seconds`; then ready to wait again."""
        if not self._event.wait(seconds):
            return None
        with self._lock:
            self._event.clear()
            wakeup = Wakeup(self._ended, self._everything)
            self._ended, self._everything = {}, False
        return wakeup


@dataclass(frozen=True)
class Wakeup:
    """Jobs announced ended since the last wait (id → final record or None), and whether any
    other job may have ended unannounced."""

    ended: dict[str, bytes | None]
    everything: bool

    def to_read(self, job_ids: list[str]) -> list[str]:
        """Of `job_ids`, those whose record must be read back: all of them after a missed
        announcement, else those announced without their record."""
        if self.everything:
            return job_ids
        return [i for i in job_ids if i in self.ended and self.ended[i] is None]


def _wakeups(waiting: Waiting, seconds: float) -> Iterator[Wakeup]:
    """Each wake-up of `waiting` until `seconds` from now have passed (the caller stops early
    once what it waits for has happened)."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        wakeup = waiting.wait(remaining)
        if wakeup is None:
            return
        yield wakeup


class JobWaiter:
    """Wakes threads (or greenlets, under gevent) waiting for particular jobs to end."""

    def __init__(self, client_factory: Callable[[], redis.Redis]):
        self._client_factory = client_factory
        self._lock = threading.Lock()
        self._waiting: dict[str, list[Waiting]] = {}
        self._listener: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._channel: tuple[int, str] | None = None
        self._channel_lock = threading.Lock()

    @property
    def channel(self) -> str:
        """This process's channel: name it in a job's record (`notify`) to be told of its end."""
        self._ensure_listener()
        return self._own_channel()

    def _own_channel(self) -> str:
        # Made in the process that listens: a forked copy of this object gets a channel of its own.
        # Under a lock: the listener and the first request ask for it at the same moment.
        with self._channel_lock:
            if self._channel is None or self._channel[0] != os.getpid():
                self._channel = (os.getpid(), keys.waiter_channel(uuid.uuid4().hex))
            return self._channel[1]

    @contextlib.contextmanager
    def registered(self, *job_ids: str) -> Iterator[Waiting]:
        """Woken when any of `job_ids` ends; register first, then read (or create) the records,
        then wait (`until_ended_from`)."""
        self._ensure_listener()
        waiting = Waiting()
        with self._lock:
            for job_id in job_ids:
                self._waiting.setdefault(job_id, []).append(waiting)
        metrics.job_waiter_added()
        try:
            yield waiting
        finally:
            metrics.job_waiter_left()
            with self._lock:
                for job_id in job_ids:
                    others = self._waiting.get(job_id, [])
                    if waiting in others:
                        others.remove(waiting)
                    if not others:
                        self._waiting.pop(job_id, None)

    def until_ended(self, store: JobStore, job_id: str, seconds: float) -> Job:
        """The job once it has ended, or as it stands after `seconds`, whichever comes first."""
        with self.registered(job_id) as waiting:
            # Most waiting polls (a client collecting a burst) find their job ended: one plain
            # read. Otherwise read it again having marked it watched, so that its end is
            # announced to this process too (both reads come after the registration).
            job = store.get(job_id)
            if not job.status.ended:
                job = store.get_watched(job_id, seconds, self.channel)
            return self.until_ended_from(waiting, store, job, seconds)

    def until_ended_from(self, waiting: Waiting, store: JobStore, job: Job, seconds: float) -> Job:
        """`job` (read or created after `waiting` was registered) once it has ended, or as it
        stands after `seconds`."""
        if job.status.ended:
            return job
        for wakeup in _wakeups(waiting, seconds):
            record = wakeup.ended.get(job.job_id)
            job = load_job(record) if record is not None else store.get(job.job_id)
            if job.status.ended:
                break
        return job

    def until_all_ended(
        self, store: JobStore, job_ids: list[str], seconds: float
    ) -> dict[str, Job]:
        """The jobs of `job_ids` that exist (by id), once every one has ended, or as they stand
        after `seconds`: a client collecting many jobs in one request. Read as `until_ended`
        reads one job: plainly, then marked watched those still running."""
        with self.registered(*job_ids) as waiting:
            jobs = store.get_many(job_ids)

            def still_running(among: list[str]) -> list[str]:
                return [i for i in among if i in jobs and not jobs[i].status.ended]

            running = still_running(job_ids)
            if not running:
                return jobs
            jobs.update(store.watch_many(running, seconds, self.channel))
            running = still_running(running)
            for wakeup in _wakeups(waiting, seconds) if running else ():
                for job_id in running:
                    if (record := wakeup.ended.get(job_id)) is not None:
                        jobs[job_id] = load_job(record)
                if to_read := wakeup.to_read(running):
                    jobs.update(store.get_many(to_read))
                if not (running := still_running(running)):
                    break
            return jobs

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until the listener's subscription is in place (start-up, tests)."""
        self._ensure_listener()
        return self._subscribed.wait(timeout)

    def waiting(self) -> int:
        """Requests waiting (one waiting for many jobs counts once)."""
        with self._lock:
            return len({id(one) for group in self._waiting.values() for one in group})

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
                pubsub.subscribe(keys.JOBS_ENDED, self._own_channel())
                # Anything that ended while we were not subscribed: let every waiter look again.
                # (Then "subscribed": whoever registers from now on misses nothing.)
                self._wake_all()
                self._subscribed.set()
                while True:
                    # A bounded read: the client's health check (a PING when idle) runs between
                    # reads, so a connection that died silently is noticed.
                    message = pubsub.get_message(timeout=LISTEN_SECONDS)
                    if message is not None and message.get("type") == "message":
                        self._wake(*parse_ended_message(message["data"]))
            except (redis.RedisError, OSError) as exc:
                log.warning("job_waiter_disconnected", error=repr(exc))
            finally:
                self._subscribed.clear()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
            self._wake_all()
            time.sleep(RECONNECT_SECONDS)

    def _wake(self, job_id: str, record: bytes | None) -> None:
        with self._lock:
            waiting = list(self._waiting.get(job_id, ()))
        for one in waiting:
            one.wake(job_id, record)

    def _wake_all(self) -> None:
        with self._lock:
            waiting = [one for group in self._waiting.values() for one in group]
        for one in waiting:
            one.wake_all()
