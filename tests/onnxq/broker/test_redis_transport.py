"""The broker transport survives a connection Celery has already collected (real redis-server).

Celery 5.7 collects its connection when Redis goes away; a channel of that
connection can still be closed or used to ack afterwards. With kombu's stock
transport that raised AttributeError and the worker exited.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.message import Message
from kombu.transport import redis as kombu_redis

from onnxq.broker.celery_app import RESTORE_LOCK_SECONDS, make_celery
from onnxq.broker.redis_transport import TRANSPORT
from onnxq.devtools.redis_server import RedisServer
from onnxq.devtools.waiting import wait_until
from onnxq.settings import Settings

QUEUE = Queue("jobs", Exchange("jobs", type="direct"), routing_key="jobs")
VISIBILITY_TIMEOUT = 1  # seconds


def take_one_unacked(url: str, transport: str | None) -> tuple[Connection, Message]:
    with Connection(url) as producer:
        producer.Producer().publish(
            {"job": 1}, exchange=QUEUE.exchange, routing_key="jobs", declare=[QUEUE]
        )
    consumer = Connection(
        url, transport=transport, transport_options={"visibility_timeout": VISIBILITY_TIMEOUT}
    )
    message = QUEUE(consumer.default_channel).get(no_ack=False)
    assert message is not None
    return consumer, message


def collected_like_celery(connection: Connection) -> None:
    # The state Celery 5.7's consumer leaves a channel in when Redis went away:
    # collect() dropped the transport's client and the channel's client pool
    # (its own close raised halfway), while the channel still holds unacked
    # messages and running jobs will ack through it.
    channel = connection.default_channel
    channel._disconnect_pools()
    connection._do_close_transport()


def quiet_at_exit(channel: Any) -> None:
    # The channel would try its restore again when garbage-collected at exit and
    # print the same error as noise; the tests already looked at it.
    channel.qos._on_collect.cancel()


def leases_expired(url: str) -> bool:
    """True once every message in `unacked_index` was taken over VISIBILITY_TIMEOUT s ago."""
    client = redis.Redis.from_url(url)
    try:
        taken = [score for _tag, score in client.zrange("unacked_index", 0, -1, withscores=True)]
    finally:
        client.close()
    return all(score < time.time() - VISIBILITY_TIMEOUT for score in taken)


def redelivered_after_visibility_timeout(url: str) -> Message | None:
    wait_until(lambda: leases_expired(url), 30, "the unacked message's lease to expire")
    with Connection(url, transport_options={"visibility_timeout": VISIBILITY_TIMEOUT}) as other:
        other.default_channel.qos.restore_visible()
        return QUEUE(other.default_channel).get(no_ack=True)


@pytest.mark.parametrize("use", ["close", "ack"])
def test_kombus_stock_transport_raises_attribute_error_on_a_collected_channel(
    redis_server: RedisServer, use: str
) -> None:
    consumer, message = take_one_unacked(redis_server.url, transport=None)
    channel = consumer.default_channel
    collected_like_celery(consumer)
    with pytest.raises(AttributeError):
        consumer.maybe_close_channel(channel) if use == "close" else message.ack()
    quiet_at_exit(channel)


def test_onnxq_transport_closes_a_collected_channel_and_the_message_comes_back(
    redis_server: RedisServer,
) -> None:
    consumer, _message = take_one_unacked(redis_server.url, transport=TRANSPORT)
    channel = consumer.default_channel
    collected_like_celery(consumer)
    consumer.maybe_close_channel(channel)  # swallows connection errors only
    quiet_at_exit(channel)

    message = redelivered_after_visibility_timeout(redis_server.url)
    assert message is not None and message.payload == {"job": 1}


def test_an_ack_on_a_collected_channel_is_logged_as_a_connection_error_and_redelivered(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    consumer, message = take_one_unacked(redis_server.url, transport=TRANSPORT)
    quiet_at_exit(consumer.default_channel)
    collected_like_celery(consumer)
    # Celery acks through ack_log_error with the connection's recoverable errors.
    errors = Connection(redis_server.url, transport=TRANSPORT).recoverable_connection_errors
    with caplog.at_level(logging.CRITICAL):
        message.ack_log_error(logging.getLogger("test"), errors)
    assert "Couldn't ack" in caplog.text

    redelivered = redelivered_after_visibility_timeout(redis_server.url)
    assert redelivered is not None and redelivered.payload == {"job": 1}


def test_both_sides_of_celery_use_the_onnxq_transport(settings: Settings) -> None:
    app = make_celery(settings)
    with app.connection_for_write() as connection:
        assert type(connection.transport).__module__ == "onnxq.broker.redis_transport"


def _sweep_and_die(url: str) -> None:
    """A worker process killed in the middle of its restore sweep (it dies inside the lock)."""
    kombu_redis.QoS.restore_by_tag = lambda *args, **kwargs: os._exit(9)
    app = make_celery(Settings(_env_file=None, redis_url=url))
    with app.connection_for_write() as connection:
        connection.default_channel.qos.restore_visible(num=None, interval=1)


def test_a_restore_lock_left_by_a_killed_worker_expires_within_seconds(
    redis_server: RedisServer,
) -> None:
    app = make_celery(Settings(_env_file=None, redis_url=redis_server.url))
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        lock, index = channel.unacked_mutex_key, channel.unacked_index_key
    client = redis.Redis.from_url(redis_server.url)
    client.zadd(index, {"a-dead-consumer's-tag": 0})  # long past its visibility timeout
    dying = multiprocessing.get_context("spawn").Process(  # no fork of a threaded process
        target=_sweep_and_die, args=(redis_server.url,)
    )
    dying.start()
    dying.join(30)
    assert dying.exitcode == 9
    # kombu's default would keep every other worker from sweeping for 300 s.
    assert 0 < client.ttl(lock) <= RESTORE_LOCK_SECONDS
