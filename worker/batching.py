"""Micro-batching on Celery's public APIs: take more waiting predict messages off the queue.

Celery delivers one job to the task; the task then takes up to N-1 more
messages from the same queue with kombu (unacknowledged, so Redis gives them
back if this process dies), runs them all through one session.run, and only
then acknowledges them.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import structlog
from celery import Celery
from kombu import Connection, Exchange, Message, Queue
from kombu.exceptions import OperationalError

from onnxq.broker.celery_app import PREDICT_TASK
from onnxq.broker.task_message import AWAITED_HEADER, Acknowledgement
from worker.runner import JobMessage

log = structlog.get_logger("onnxq.worker")

ACCEPT = ["json"]  # never pickle


class QueueDrain:
    """Takes waiting predict messages from one queue, within a small time budget."""

    def __init__(
        self,
        app: Celery,
        queue_name: str,
        wait_ms: float,
        read_prefixes: tuple[str, ...] = (),
        queued_wait_ms: float | None = None,
    ):
        self.app = app
        self.queue_name = queue_name
        self.wait_seconds = wait_ms / 1000
        # A batch no client waits on in its request may wait longer (microbatch_queued_wait_ms).
        queued_ms = wait_ms if queued_wait_ms is None else queued_wait_ms
        self.queued_wait_seconds = max(wait_ms, queued_ms) / 1000
        # Keys read with each message taken (prefix + the job id): its record and rows.
        self.read_prefixes = read_prefixes
        self._connection: Connection | None = None
        self._queue: Any = None
        self._found_empty = False  # what the last look at the queue found

    def _bound_queue(self) -> Any:
        if self._queue is None:
            # Made on first use, so in the worker child process, never across a fork.
            self._connection = self.app.connection_for_read()
            exchange = Exchange(self.queue_name, type="direct")
            queue = Queue(self.queue_name, exchange, routing_key=self.queue_name)
            self._queue = queue(self._connection.default_channel)
        return self._queue

    def take(
        self, limit: int, block_seconds: float = 0.0, *, awaited: bool = False
    ) -> list[tuple[JobMessage, Message]]:
        """Return up to `limit` more predict jobs, waiting up to `block_seconds` for the first
        (Redis only). Once a batch has its first job (the task's own, or the first taken here),
        it waits a few ms for more: the queue is looked at again when they are up, not polled
        meanwhile. The wait is the short one (`wait_ms`) when a client waits on any job of the
        batch in its request (`awaited`: the task's own job, or one taken here), else the
        longer `queued_wait_ms`. A blocking take of a queue this drain last found empty starts
        with the blocking pop, and the transport holds what it pops for the short wait before
        it records and takes the rest in one script (Channel.take_reading's `gather_seconds`)."""
        taken: list[tuple[JobMessage, Message]] = []
        started = time.monotonic()
        try:
            queue = self._bound_queue()
            while len(taken) < limit:
                block = 0.0 if taken else block_seconds
                gather = bool(block) and self._found_empty
                messages, emptied, waited = self._get(queue, limit - len(taken), block, gather)
                self._found_empty = emptied
                if block and messages:  # woken by the first job: the batch's wait starts now
                    started = time.monotonic() - (self.wait_seconds if waited else 0.0)
                other_task = False
                for message, stored in messages:
                    if other_task or message.headers.get("task") != PREDICT_TASK:
                        other_task = True  # not ours to batch: back to the queue
                        message.requeue()
                        continue
                    _args, kwargs, _embed = message.decode()
                    if stored is not None and len(stored) == 2:
                        kwargs["stored"] = stored
                    job = JobMessage(**kwargs, awaited=bool(message.headers.get(AWAITED_HEADER)))
                    awaited = awaited or job.awaited
                    taken.append((job, message))
                if other_task:
                    break
                if not emptied:
                    continue  # more are waiting: take them now
                wait = self.wait_seconds if awaited else self.queued_wait_seconds
                remaining = started + wait - time.monotonic()
                if remaining <= 0 or (block and not taken):
                    break  # no time left (or a blocking wait found nothing): ask no more
                time.sleep(remaining)
                started = -float("inf")  # one more look, then done
        except (OperationalError, OSError, ConnectionError) as exc:
            # Batching is an optimisation: on trouble, run what we have.
            log.warning("batch_fetch_failed", error=repr(exc))
            self.reset()
        return taken

    def _get(
        self, queue: Any, limit: int, block_seconds: float, gather: bool = False
    ) -> tuple[list[tuple[Message, tuple[Any, ...] | None]], bool, bool]:
        """Up to `limit` messages (each with what was read for it), whether they emptied the
        queue, and whether the batch's wait was spent taking them (`gather` on onnxq's Redis
        channel, onnxq/broker/redis_transport.py): in one round trip there (two with `gather`),
        one by one on other kombu transports."""
        take_reading = getattr(queue.channel, "take_reading", None)
        if take_reading is not None:
            taken = take_reading(
                self.queue_name,
                limit,
                ACCEPT,
                block_seconds,
                prefixes=self.read_prefixes,
                gather_seconds=self.wait_seconds if gather else None,
            )
            return [(m, read or None) for m, read in taken], len(taken) < limit, gather
        message = queue.get(no_ack=False, accept=ACCEPT)
        return ([], True, False) if message is None else ([(message, None)], False, False)

    def reset(self) -> None:
        if self._connection is not None:
            # The connection is being thrown away anyway.
            with contextlib.suppress(Exception):
                self._connection.release()
        self._connection, self._queue = None, None
        self._found_empty = False


def acknowledgement(messages: list[Message]) -> Acknowledgement | None:
    """How the job store can acknowledge `messages` in the script that stores their outcomes:
    when they were all taken on one of onnxq's Redis channels (the store and the broker are one
    Redis); None otherwise (settle them)."""
    if not messages:
        return None
    channel = messages[0].channel
    if getattr(channel, "acknowledgement", None) is None:
        return None
    if not all(message.channel is channel for message in messages):
        return None
    return channel.acknowledgement(messages)  # type: ignore[no-any-return]


def settle(messages: list[Message], *, ok: bool) -> None:
    """Acknowledge the extra messages once their jobs are stored, or give them back."""
    if not messages:
        return
    ack_many = getattr(messages[0].channel, "ack_many", None)
    if ok and ack_many is not None and all(m.channel is messages[0].channel for m in messages):
        try:
            ack_many(messages)  # one round trip for the batch
        except (OperationalError, OSError, ConnectionError) as exc:
            log.warning("batch_settle_failed", ok=ok, error=repr(exc))
        return
    for message in messages:
        try:
            message.ack() if ok else message.requeue()
        except (OperationalError, OSError, ConnectionError) as exc:
            # Unacknowledged messages come back after the visibility timeout.
            log.warning("batch_settle_failed", ok=ok, error=repr(exc))
