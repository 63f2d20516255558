"""kombu's Redis transport with two changes: leases on held messages, and lost channels fail softly.

Leases: every channel's unacknowledged messages are renewed while the process holding them lives
(onnxq/broker/leases.py), so a short visibility timeout is safe.

A lost channel:
When Redis goes away, Celery 5.7's consumer collects its broker connection,
which drops the transport's client, and reconnects with a new one. Channels of
the old connection can still be used afterwards: closing one that did not
finish closing (its pending BRPOP read raised) restores its unacked messages,
and a job that was running during the outage acks its message when it ends.
Both then build a Redis client from a transport that is gone and raise
`AttributeError: 'NoneType' object has no attribute 'hostname'` (or
`'client'`). Celery treats that as unrecoverable: **the worker exits**.

Here such a channel raises Redis's `ConnectionError` instead, which kombu and
Celery already handle as "the connection is gone" (log it, carry on). The
messages stay in Redis's unacked hash, where the visibility sweep hands them
out again; a job whose outcome was stored before its ack failed is not run
again when redelivered.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

from onnxq.broker.leases import RENEWER

TRANSPORT = "onnxq.broker.redis_transport:Transport"


class Channel(kombu_redis.Channel):
    """A Redis channel whose held messages are leased, and that says "connection lost" once its
    connection was collected."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._sync_client: Any = None
        super().__init__(*args, **kwargs)
        RENEWER.track(self)

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """kombu builds a new redis.Redis for every publish and ack (~0.1 ms of CPU each, most of
        a publish's cost); one per channel and pool does, since a client only borrows
        connections from the pool for each command."""
        if client:
            yield client
            return
        pool = self.pool
        if self._sync_client is None or self._sync_client.connection_pool is not pool:
            self._sync_client = self._create_client()
        yield self._sync_client

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError("this channel's broker connection was closed")
        params: dict[str, Any] = super()._connparams(asynchronous)
        return params


class Transport(kombu_redis.Transport):
    """kombu's Redis transport using `Channel` above."""

    Channel = Channel
