"""Leases on held messages (onnxq/broker/leases.py), against a real redis-server.

A message a live process holds is never handed out again, however long it holds it; the messages
of a process killed with SIGKILL come back once the visibility timeout has passed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import redis
from kombu import Connection, Exchange, Queue

from onnxq.broker.leases import RENEWER
from onnxq.broker.redis_transport import TRANSPORT
from onnxq.devtools.redis_server import RedisServer
from onnxq.devtools.waiting import wait_until

QUEUE = Queue("jobs", Exchange("jobs", type="direct"), routing_key="jobs")
TIMEOUT = 5  # the smallest visibility timeout settings allow

HOLDER = f"""
import sys, time
from kombu import Connection, Exchange, Queue
queue = Queue("jobs", Exchange("jobs", type="direct"), routing_key="jobs")
connection = Connection(sys.argv[1], transport="{TRANSPORT}",
                        transport_options={{"visibility_timeout": {TIMEOUT}}})
message = queue(connection.default_channel).get(no_ack=False)
print("held", message.payload["job"], flush=True)
time.sleep(3600)
"""


def publish(url: str, job: int) -> None:
    with Connection(url) as producer:
        producer.Producer().publish(
            {"job": job}, exchange=QUEUE.exchange, routing_key="jobs", declare=[QUEUE]
        )


def score(client: redis.Redis) -> float:
    [(_tag, value)] = client.zrange("unacked_index", 0, -1, withscores=True)
    return float(value)


def sweep(url: str) -> int | None:
    """What a live worker's restore sweep does; returns the job handed out again, if any."""
    with Connection(url, transport_options={"visibility_timeout": TIMEOUT}) as other:
        other.default_channel.qos.restore_visible(num=None, interval=1)
        message = QUEUE(other.default_channel).get(no_ack=True)
        return None if message is None else message.payload["job"]


def test_renewal_moves_the_score_of_each_held_message_and_only_those(
    redis_server: RedisServer,
) -> None:
    publish(redis_server.url, 1)
    client = redis.Redis.from_url(redis_server.url)
    with Connection(
        redis_server.url, transport=TRANSPORT, transport_options={"visibility_timeout": TIMEOUT}
    ) as consumer:
        message = QUEUE(consumer.default_channel).get(no_ack=False)
        assert message is not None
        taken = score(client)
        assert RENEWER.renew_once(now=taken + 1000) >= 1
        assert score(client) == taken + 1000
        # The sweep hands out only messages whose lease is older than the timeout.
        assert sweep(redis_server.url) is None
        message.ack()
        RENEWER.renew_once(now=taken + 2000)
        # XX: an acknowledged message is not brought back by a renewal racing its ack.
        assert client.zcard("unacked_index") == 0


def test_a_live_holder_keeps_its_message_and_a_killed_ones_comes_back(
    redis_server: RedisServer,
) -> None:
    publish(redis_server.url, 7)
    client = redis.Redis.from_url(redis_server.url)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_server.url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().split() == ["held", "7"]
        first = score(client)
        # Two renewals by the holder's own thread: its lease keeps moving while it lives.
        wait_until(lambda: score(client) > first, 60, "the first renewal")
        second = score(client)
        wait_until(lambda: score(client) > second, 60, "the second renewal")
        assert sweep(redis_server.url) is None, "a live holder's message was handed out"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    last = score(client)
    # The timeout is what a dead holder's message waits; the sweep then hands it out.
    wait_until(lambda: time.time() > last + TIMEOUT, 60, "the lease to run out")
    assert sweep(redis_server.url) == 7
