"""The broker transport survives a connection Celery has already collected (real redis-server)."""

from __future__ import annotations

import time

import pytest
from kombu import Connection, Exchange, Queue

from onnxq.celery_config import make_celery
from onnxq.redis_server import RedisServer
from onnxq.redis_transport import TRANSPORT
from onnxq.settings import Settings

QUEUE = Queue("jobs", Exchange("jobs", type="direct"), routing_key="jobs")


def take_one_unacked(url: str, transport: str | None) -> Connection:
    with Connection(url) as producer:
        producer.Producer().publish({"job": 1}, exchange=QUEUE.exchange, routing_key="jobs",
                                    declare=[QUEUE])  # fmt: skip
    consumer = Connection(url, transport=transport, transport_options={"visibility_timeout": 1})
    assert QUEUE(consumer.default_channel).get(no_ack=False) is not None
    return consumer


def drop_transport_like_celery_collect(connection: Connection) -> None:
    # What Celery 5.7's consumer leaves behind when Redis goes away mid-poll:
    # the transport's client is gone but a channel with unacked messages is open.
    connection._do_close_transport()


def test_kombus_stock_transport_crashes_closing_a_collected_channel(
    redis_server: RedisServer,
) -> None:
    consumer = take_one_unacked(redis_server.url, transport=None)
    channel = consumer.default_channel
    drop_transport_like_celery_collect(consumer)
    with pytest.raises(AttributeError, match="hostname"):
        channel.close()


def test_onnxq_transport_closes_it_and_the_message_comes_back_after_the_visibility_timeout(
    redis_server: RedisServer,
) -> None:
    consumer = take_one_unacked(redis_server.url, transport=TRANSPORT)
    channel = consumer.default_channel
    drop_transport_like_celery_collect(consumer)
    channel.close()

    time.sleep(1.2)  # past the 1 s visibility timeout
    with Connection(redis_server.url, transport_options={"visibility_timeout": 1}) as other:
        other.default_channel.qos.restore_visible()
        message = QUEUE(other.default_channel).get(no_ack=True)
    assert message is not None and message.payload == {"job": 1}


def test_both_sides_of_celery_use_the_onnxq_transport(settings: Settings) -> None:
    app = make_celery(settings)
    with app.connection_for_write() as connection:
        assert type(connection.transport).__module__ == "onnxq.redis_transport"
