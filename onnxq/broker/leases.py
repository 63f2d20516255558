"""Leases on unacknowledged messages: a live holder keeps its messages, a dead one's come back fast.

kombu's Redis transport records every message a consumer takes, without acknowledging it, in the
`unacked` hash and the `unacked_index` sorted set (scored by when it was taken); a restore sweep in
every live consumer hands a message out again once its score is older than the visibility timeout.
Alone that forces a bad choice: a timeout longer than the longest job (kombu's default is an hour)
leaves the messages of a killed worker - the job Celery gave it and the micro-batch it took on its
own connection - stuck for that long; a short one hands jobs that are still running to a second
worker.

So every process renews the score of each message its channels still hold, every third of the
visibility timeout. A live holder's messages never age; a dead holder's are handed out again within
the timeout plus one restore sweep (docs/reliability.md). The renewal runs in a daemon thread of its
own, per process, created on first use after any fork.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

import structlog

log = structlog.get_logger("onnxq.broker")


class LeaseRenewer:
    """Renews the `unacked_index` scores of the messages held by this process's channels."""

    def __init__(self) -> None:
        self._channels: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def track(self, channel: Any) -> None:
        """Keep renewing what `channel` holds for as long as the channel lives."""
        with self._lock:
            if self._pid != os.getpid():  # a fresh process: nothing inherited runs here
                self._channels, self._thread, self._pid = weakref.WeakSet(), None, os.getpid()
            self._channels.add(channel)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="onnxq-lease-renewer", daemon=True
                )
                self._thread.start()

    def renew_once(self, now: float | None = None) -> int:
        """Refresh every held message's score to `now`; return how many were renewed."""
        now = time.time() if now is None else now
        renewed = 0
        with self._lock:
            channels = list(self._channels)
        for channel in channels:
            tags = list(getattr(channel.qos, "_delivered", {}) or ())
            connection = getattr(channel, "connection", None)
            if not tags or channel.closed or connection is None or connection.client is None:
                continue  # nothing held, or a channel of a connection already given up
            try:
                with channel.conn_or_acquire() as client:
                    # XX: only messages still unacked; an ack racing this must not revive one.
                    client.zadd(channel.unacked_index_key, dict.fromkeys(tags, now), xx=True)
                renewed += len(tags)
            except Exception as exc:  # Redis away: the next round tries again
                log.warning("lease_renewal_failed", held=len(tags), error=repr(exc))
        return renewed

    def interval(self) -> float:
        with self._lock:
            timeouts = [float(c.visibility_timeout) for c in self._channels]
        return max(0.2, min(timeouts, default=30.0) / 3)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval())
            self._wake.clear()
            self.renew_once()


RENEWER = LeaseRenewer()
