"""take_many and ack_many keep kombu's records exactly as basic_get and ack do (real redis-server).

A micro-batch taken in one round trip must be indistinguishable from one taken message by
message: the same unacked hash entries and index, the same in-memory QoS, the same restore when
its holder goes away.
"""

from __future__ import annotations

import json
import threading

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.exceptions import ContentDisallowed

from onnxq.broker.redis_transport import TRANSPORT
from onnxq.devtools.redis_server import RedisServer

QUEUE = Queue("jobs", Exchange("jobs", type="direct"), routing_key="jobs")


def publish(url: str, n: int) -> None:
    with Connection(url) as producer:
        for i in range(n):
            producer.Producer().publish(
                {"job": i}, exchange=QUEUE.exchange, routing_key="jobs", declare=[QUEUE]
            )


def held(client: redis.Redis) -> dict[str, list]:
    """The unacked hash, decoded, by delivery tag."""
    return {tag.decode(): json.loads(raw) for tag, raw in client.hgetall("unacked").items()}


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url)


def test_a_batch_is_recorded_as_basic_get_records_each_message(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    publish(redis_server.url, 5)
    queued = [json.loads(raw) for raw in reversed(client.lrange("jobs", 0, -1))]  # oldest first

    with Connection(redis_server.url, transport=TRANSPORT) as connection:
        channel = connection.default_channel
        first = QUEUE(channel).get(no_ack=False)  # kombu's own basic_get
        assert first is not None
        messages = channel.take_many("jobs", 3, accept=["json"])

        assert [m.decode() for m in [first, *messages]] == [{"job": i} for i in range(4)]
        assert client.llen("jobs") == 1
        records = held(client)
        # The record kombu's basic_get made, and the same form for each message of the batch.
        assert records[first.delivery_tag] == [queued[0], "jobs", "jobs"]
        for message, payload in zip(messages, queued[1:4], strict=True):
            assert records[message.delivery_tag] == [payload, "jobs", "jobs"]
        index = {tag.decode() for tag in client.zrange("unacked_index", 0, -1)}
        assert index == set(records)
        tags = [m.delivery_tag for m in [first, *messages]]
        assert list(channel.qos._delivered) == tags

        channel.ack_many(messages[:2])
        assert set(held(client)) == {first.delivery_tag, messages[2].delivery_tag}
        assert client.zcard("unacked_index") == 2
        channel.qos._flush()
        assert list(channel.qos._delivered) == [first.delivery_tag, messages[2].delivery_tag]
    # The two still held when the channel closed went back to the queue, as kombu restores.
    assert client.llen("jobs") == 3 and client.hlen("unacked") == 0


def test_an_empty_queue_gives_an_empty_batch(redis_server: RedisServer) -> None:
    with Connection(redis_server.url, transport=TRANSPORT) as connection:
        QUEUE(connection.default_channel).declare()
        assert connection.default_channel.take_many("jobs", 8, accept=["json"]) == []


def test_a_batch_never_decodes_what_it_does_not_accept(redis_server: RedisServer) -> None:
    with Connection(redis_server.url) as producer:
        producer.Producer().publish(
            {"job": 1},
            exchange=QUEUE.exchange,
            routing_key="jobs",
            declare=[QUEUE],
            serializer="pickle",
        )
    with Connection(redis_server.url, transport=TRANSPORT) as connection:
        (message,) = connection.default_channel.take_many("jobs", 8, accept=["json"])
        with pytest.raises(ContentDisallowed):
            message.decode()


def test_a_blocking_take_waits_for_a_message_and_records_it(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    with Connection(redis_server.url, transport=TRANSPORT) as connection:
        channel = connection.default_channel
        QUEUE(channel).declare()
        publisher = threading.Thread(target=publish, args=(redis_server.url, 1))
        publisher.start()  # before or during the wait: either way the take gets it

        messages = channel.take_many("jobs", 8, accept=["json"], block_seconds=30)

        publisher.join()
        assert [m.decode() for m in messages] == [{"job": 0}]
        assert set(held(client)) == {messages[0].delivery_tag}
        channel.ack_many(messages)


def test_a_blocking_take_records_the_popped_message_with_those_behind_it_up_to_the_limit(
    redis_server: RedisServer, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    brpop = redis.Redis.brpop

    def five_arrive_during_the_wait(self: redis.Redis, *args: object, **kwargs: object) -> object:
        publish(redis_server.url, 5)  # the queue was empty when the take began
        return brpop(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "brpop", five_arrive_during_the_wait)
    with Connection(redis_server.url, transport=TRANSPORT) as connection:
        channel = connection.default_channel
        QUEUE(channel).declare()

        messages = channel.take_many("jobs", 3, accept=["json"], block_seconds=30)

        assert [m.decode() for m in messages] == [{"job": 0}, {"job": 1}, {"job": 2}]
        assert set(held(client)) == {m.delivery_tag for m in messages}
        assert client.llen("jobs") == 2
        channel.ack_many(messages)


def test_a_blocking_take_of_a_queue_that_stays_empty_gives_an_empty_batch(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    with Connection(redis_server.url, transport=TRANSPORT) as connection:
        channel = connection.default_channel
        QUEUE(channel).declare()
        assert channel.take_many("jobs", 8, accept=["json"], block_seconds=0.05) == []
        assert client.hlen("unacked") == 0


def test_a_take_reads_the_keys_named_after_each_message_task_id(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    with Connection(redis_server.url, transport=TRANSPORT) as connection:
        channel = connection.default_channel
        QUEUE(channel).declare()
        producer = connection.Producer()
        for task_id in ("t1", "t2"):
            producer.publish({}, routing_key="jobs", headers={"id": task_id}, declare=[QUEUE])
        publish(redis_server.url, 1)  # no task id at all
        client.set("record:t1", b"r1")
        client.set("rows:t2", b"x2")

        taken = channel.take_reading("jobs", 8, ["json"], prefixes=("record:", "rows:"))

        assert [read for _, read in taken] == [(b"r1", None), (None, b"x2"), (None, None)]
        assert client.hlen("unacked") == 3
        channel.ack_many([message for message, _ in taken])
