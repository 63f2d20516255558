"""StoreClient: single commands on known-clean connections, redis-py's checks everywhere else,
against a real redis-server."""

from __future__ import annotations

import select

import pytest
import redis

from onnxq.broker.redis_client import StoreClient, StorePool, connect_redis
from onnxq.devtools.redis_server import RedisServer


class Interrupted(BaseException):
    """What a gevent Timeout or a killed greenlet looks like to the code it interrupts."""


@pytest.fixture
def client(redis_server: RedisServer) -> StoreClient:
    store = connect_redis(redis_server.url)
    assert isinstance(store, StoreClient)
    assert isinstance(store.connection_pool, StorePool)
    store.set("k", b"value")
    return store


def test_single_commands_reuse_one_connection(client: StoreClient) -> None:
    for _ in range(5):
        assert client.get("k") == b"value"
    assert len([c for c in client.connection_pool.pool.queue if c is not None]) == 1


def test_a_connection_another_user_left_unread_is_not_handed_out_clean(
    client: StoreClient,
) -> None:
    pool = client.connection_pool
    assert client.get("k") == b"value"  # the pool's one connection, now known clean
    connection = pool.get_connection()  # redis-py's own path: no longer known clean
    connection.send_command("PING")  # its reply is never read
    assert select.select([connection._sock], [], [], 5)[0]
    pool.release(connection)
    # The unread +PONG must not be taken for GET's reply (redis-py's own check sees it; a reply
    # still on its way cannot be seen by any check: redis-py's pool has the same limit).
    assert client.get("k") == b"value"
    assert client.get("k") == b"value"


def test_a_command_interrupted_before_its_reply_disconnects_its_connection(
    client: StoreClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.get("k") == b"value"
    [connection] = [c for c in client.connection_pool.pool.queue if c is not None]

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(connection, "read_response", interrupted)
        with pytest.raises(Interrupted):
            client.get("k")  # sent, reply left unread
    assert connection._sock is None
    assert client.get("k") == b"value"


def test_a_refusal_from_redis_leaves_the_connection_usable(client: StoreClient) -> None:
    with pytest.raises(redis.ResponseError):
        client.incr("k")  # not an integer
    assert client.get("k") == b"value"
    assert len([c for c in client.connection_pool.pool.queue if c is not None]) == 1


def test_scripts_load_themselves_and_run(client: StoreClient) -> None:
    script = client.register_script("return ARGV[1]")
    client.script_flush()
    assert script(args=["x"]) == b"x"  # NOSCRIPT, loaded, run again


def test_a_restarted_redis_is_reconnected_within_the_one_retry(
    client: StoreClient, redis_server: RedisServer
) -> None:
    assert client.get("k") == b"value"
    redis_server.stop()  # AOF on: the key survives the restart
    redis_server.start()
    assert client.get("k") == b"value"


def test_an_outage_raises_promptly(client: StoreClient, redis_server: RedisServer) -> None:
    redis_server.kill()
    with pytest.raises(redis.ConnectionError):
        client.get("k")
