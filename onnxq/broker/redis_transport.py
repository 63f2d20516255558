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

Batches: a worker that takes its micro-batch with kombu's `basic_get` pays three round trips per
message (RPOP, then a MULTI that records it as unacknowledged, then one more to acknowledge it).
`take_many` takes up to N messages in one script and `ack_many` acknowledges them in one MULTI,
with the same records kombu keeps (the unacked hash and index, and the channel's in-memory QoS
that acks and the lease renewer use).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kombu.serialization import prepare_accept_content
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import loads
from redis.exceptions import ConnectionError as RedisConnectionError

from onnxq.broker.leases import RENEWER
from onnxq.broker.task_message import Acknowledgement

TRANSPORT = "onnxq.broker.redis_transport:Transport"

# Up to ARGV[1] messages off kombu's end of the queue list KEYS[1], each recorded as kombu's
# basic_get records it: [payload, exchange, routing key] in the unacked hash KEYS[2] under its
# delivery tag, and the tag in the unacked index KEYS[3], scored with when it was taken (ARGV[2]).
# ARGV[3] is a count p of key prefixes (ARGV[4..3+p]): for each message, the value of each
# prefix followed by its task id is returned too (what its task will read first). ARGV[4+p], when
# given, is a message already popped (by a blocking BRPOP): it is recorded first and counts
# towards the limit. One script: a process that dies between the pop and the record cannot lose
# a message. Returns {messages, values}.
_TAKE_MANY = """
local limit, p = tonumber(ARGV[1]), tonumber(ARGV[3])
local items, values = {}, {}
if ARGV[4 + p] then
  items[1] = ARGV[4 + p]
  limit = limit - 1
end
if limit > 0 then
  local popped = redis.call('RPOP', KEYS[1], limit)
  if popped then
    for _, raw in ipairs(popped) do items[#items + 1] = raw end
  end
end
for _, raw in ipairs(items) do
  local message = cjson.decode(raw)
  local properties = message['properties']
  local info = properties['delivery_info']
  local tag = properties['delivery_tag']
  redis.call('ZADD', KEYS[3], ARGV[2], tag)
  redis.call('HSET', KEYS[2], tag, '[' .. raw .. ',' .. cjson.encode(info['exchange']) .. ','
    .. cjson.encode(info['routing_key']) .. ']')
  local id = type(message['headers']) == 'table' and message['headers']['id'] or nil
  for j = 1, p do
    values[#values + 1] = type(id) == 'string' and redis.call('GET', ARGV[3 + j] .. id) or false
  end
end
return {items, values}
"""


class Channel(kombu_redis.Channel):
    """A Redis channel whose held messages are leased, and that says "connection lost" once its
    connection was collected."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._sync_client: Any = None
        self._take_many_script: Any = None
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

    def take_many(
        self, queue: str, limit: int, accept: Sequence[str], block_seconds: float = 0.0
    ) -> list[Any]:
        """Up to `limit` messages from `queue`, unacknowledged, as `basic_get` would give them
        one by one (only its priority-0 list: onnxq publishes no priorities).

        With `block_seconds`, an empty queue is waited on (BRPOP) for up to that long. Between
        that pop and its record the message is held only by this process, the same moment
        kombu's own consumer has after its BRPOP (a loss there is repaired by the reconciler).
        """
        return [message for message, _ in self.take_reading(queue, limit, accept, block_seconds)]

    def take_reading(
        self,
        queue: str,
        limit: int,
        accept: Sequence[str],
        block_seconds: float = 0.0,
        prefixes: Sequence[str] = (),
        *,
        gather_seconds: float | None = None,
    ) -> list[tuple[Any, tuple[bytes | None, ...]]]:
        """take_many, and with each message the values of `prefixes` + its task id, read in the
        same script (the job record and rows its task needs: no round trip of their own).

        With `gather_seconds` (the caller found the queue empty a moment ago), a blocking take
        starts with its BRPOP rather than a script that would find nothing, and the message it
        pops waits that long in this process for others to arrive (a micro-batch's wait) before
        the one script that records it takes them too: two round trips, where a script, the
        BRPOP, a script and a look after the wait are four. Until that script the popped message
        is held by this process alone, as after kombu's own BRPOP, only longer: a process killed
        then loses it, and the reconciler sends its job again (docs/reliability.md).
        """
        with self.conn_or_acquire() as client:
            if self._take_many_script is None:
                self._take_many_script = client.register_script(_TAKE_MANY)
            keys = [queue, self.unacked_key, self.unacked_index_key]
            read = [len(prefixes), *prefixes]
            items: list[Any] = []
            values: list[Any] = []
            if gather_seconds is None or block_seconds <= 0:
                # whichever client the channel has now
                items, values = self._take_many_script(
                    keys=keys, args=[limit, time.time(), *read], client=client
                )
            if not items and block_seconds > 0:
                popped = client.brpop([queue], timeout=block_seconds)
                if popped is not None:
                    if gather_seconds:
                        time.sleep(gather_seconds)
                    args = [limit, time.time(), *read, popped[1]]
                    items, values = self._take_many_script(keys=keys, args=args, client=client)
        accepted = prepare_accept_content(accept)
        taken = []
        for number, item in enumerate(items):
            message = self.Message(loads(item), channel=self)
            message.accept = accepted
            virtual.QoS.append(self.qos, message, message.delivery_tag)  # in memory only
            values_of = values[number * len(prefixes) : (number + 1) * len(prefixes)]
            taken.append((message, tuple(values_of)))
        return taken

    def acknowledgement(self, messages: Sequence[Any]) -> Acknowledgement:
        """What the job store's script needs to acknowledge `messages` (taken on this channel)
        in the same round trip that stores their outcomes; then call `acknowledged`."""
        return Acknowledgement(
            self.unacked_key, self.unacked_index_key, [m.delivery_tag for m in messages]
        )

    def acknowledged(self, messages: Sequence[Any]) -> None:
        """`messages` were acknowledged in Redis by someone else's script: forget them here."""
        for message in messages:
            virtual.QoS.ack(self.qos, message.delivery_tag)  # in memory only

    def ack_many(self, messages: Sequence[Any]) -> None:
        """Acknowledge `messages` (taken on this channel) in one round trip."""
        with self.conn_or_acquire() as client:
            pipe = client.pipeline()
            for message in messages:
                self.qos._remove_from_indices(message.delivery_tag, pipe)
            pipe.execute()
        for message in messages:
            virtual.QoS.ack(self.qos, message.delivery_tag)  # in memory only

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError("this channel's broker connection was closed")
        params: dict[str, Any] = super()._connparams(asynchronous)
        return params


class Transport(kombu_redis.Transport):
    """kombu's Redis transport using `Channel` above."""

    Channel = Channel
