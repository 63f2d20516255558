"""Redis clients for the job store: fail fast, turn an outage into a 503-shaped error, and
spend little CPU per command.

Every submit and every worker batch runs job-store commands, and redis-py 8's general path costs
about twice the round trip itself (measured here: a GET 59-63 us of client CPU through
`Redis.get`, 26 us on a bare socket): the pool checks each connection it hands out for unread
data (a poll and two fcntl), and each command goes through its retry object, `connect()` and
observability hooks. `StoreClient` sends single commands straight on a pooled connection and
skips the unread-data check only for a connection whose last command it completed itself; a
connection used any other way (pipelines, an interrupted command) is checked before its next
single command, and reset if a reply is waiting in it (redis-py 8 evaluates its own check but
ignores the result when maintenance notifications are on, its default).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from onnxq.errors import QueueUnavailable

# As the Retry below: one more try on a fresh connection, after this long.
RETRY_BACKOFF_SECONDS = 0.02
_CLEAN = "_onnxq_clean"  # set on a connection whose last command completed through StoreClient


class StorePool(redis.BlockingConnectionPool):
    """redis-py's blocking pool, plus a hand-out for connections known to be clean."""

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        connection = super().get_connection(*args, **kwargs)
        setattr(connection, _CLEAN, False)  # used elsewhere: check it when it comes back
        return connection

    def take_clean(self) -> Any:
        """A connection for one command; redis-py's full checks unless it is known clean."""
        self._checkpid()
        try:
            connection = self.pool.get(block=True, timeout=self.timeout)
        except queue.Empty:
            raise redis.ConnectionError("No connection available.") from None
        known_clean = connection is not None and getattr(connection, _CLEAN, False)
        if known_clean and connection._sock is not None:  # connected, nothing left unread
            setattr(connection, _CLEAN, False)
            return connection
        self.pool.put_nowait(connection)
        connection = self.get_connection()
        # redis-py 8 skips its own unread-data check when maintenance notifications are on (its
        # default), so a reply another user left unread would be taken for this command's.
        try:
            if connection.can_read():
                connection.disconnect()
                connection.connect()
        except BaseException:
            self.release(connection)
            raise
        return connection

    def give_back(self, connection: Any, clean: bool) -> None:
        setattr(connection, _CLEAN, clean)
        if clean and connection.pid == self.pid:
            self.pool.put_nowait(connection)  # what release() does, minus its bookkeeping
            return
        connection.disconnect()  # a reply may be half read: never hand it to anyone
        self.release(connection)


class StoreClient(redis.Redis):
    """A redis-py client whose single commands skip the general path's per-command checks."""

    def _execute_command(self, *args: Any, **options: Any) -> Any:
        pool = self.connection_pool
        if self.connection is not None or not isinstance(pool, StorePool):
            return super()._execute_command(*args, **options)
        connection = pool.take_clean()
        try:
            return self._send_on(pool, connection, *args, **options)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            time.sleep(RETRY_BACKOFF_SECONDS)  # one more try, on a fresh connection
        return self._send_on(pool, pool.take_clean(), *args, **options)

    def _send_on(self, pool: StorePool, connection: Any, *args: Any, **options: Any) -> Any:
        """One command on `connection`, which goes back to `pool` (reset unless the reply was
        read whole)."""
        clean = False
        try:
            reply = self._send_command_parse_response(connection, args[0], *args, **options)
            clean = True
            return reply
        except redis.ResponseError:
            clean = True  # Redis answered (NOSCRIPT, WRONGTYPE, ...): the reply was read
            raise
        finally:
            pool.give_back(connection, clean)


def connect_redis(
    url: str, *, socket_timeout: float = 2.0, max_connections: int | None = None
) -> redis.Redis:
    """A client that fails fast when Redis is down, so an outage becomes a quick 503.

    redis-py's default retries with backoff make each refused call take seconds. Callers share a
    bounded pool (`max_connections`, 50 by default; the gateway: hundreds of requests at once
    under gevent) and wait for a free connection rather than each opening its own.
    """
    options = {
        "socket_connect_timeout": 1,
        "socket_timeout": socket_timeout,
        "health_check_interval": 10,
        "retry": Retry(ExponentialBackoff(cap=0.1, base=0.02), retries=1),
    }
    pool = StorePool.from_url(
        url, max_connections=max_connections or 50, timeout=socket_timeout * 2, **options
    )
    return StoreClient(connection_pool=pool)


@contextmanager
def redis_errors_as_unavailable() -> Iterator[None]:
    """Turn a Redis outage into a 503-shaped error instead of a stack trace."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
        # ResponseError: Redis answered but refused (DENIED, READONLY, OOM): unusable too.
        raise QueueUnavailable(f"the job store is unreachable: {exc}") from exc
