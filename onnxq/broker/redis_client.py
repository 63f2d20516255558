"""Redis clients for the job store: fail fast, and turn an outage into a 503-shaped error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from onnxq.errors import QueueUnavailable


def connect_redis(
    url: str, *, socket_timeout: float = 2.0, max_connections: int | None = None
) -> redis.Redis:
    """A client that fails fast when Redis is down, so an outage becomes a quick 503.

    redis-py's default retries with backoff make each refused call take seconds. With
    `max_connections` (the gateway: hundreds of requests at once under gevent), callers share a
    bounded pool and wait for a free connection rather than each opening its own.
    """
    options = {
        "socket_connect_timeout": 1,
        "socket_timeout": socket_timeout,
        "health_check_interval": 10,
        "retry": Retry(ExponentialBackoff(cap=0.1, base=0.02), retries=1),
    }
    if max_connections is None:
        return redis.Redis.from_url(url, **options)
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=socket_timeout * 2, **options
    )
    return redis.Redis(connection_pool=pool)


@contextmanager
def redis_errors_as_unavailable() -> Iterator[None]:
    """Turn a Redis outage into a 503-shaped error instead of a stack trace."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
        # ResponseError: Redis answered but refused (DENIED, READONLY, OOM): unusable too.
        raise QueueUnavailable(f"the job store is unreachable: {exc}") from exc
