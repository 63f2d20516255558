"""kombu's Redis transport with one fix: no crash restoring unacked messages after Celery let go.

When Redis goes away, Celery 5.7's consumer collects its broker connection
(which drops the transport's client) and then closes it. If a channel did not
finish closing during the collect (its pending BRPOP read raised), the second
close tries to restore that channel's unacked messages through a transport with
no client, `AttributeError: 'NoneType' object has no attribute 'hostname'`,
which Celery treats as unrecoverable: the worker exits. It happened when Redis
restarted just as a worker finished a job whose ack then failed.

The messages are safe where they already are, in Redis's unacked hash: the
visibility sweep of any live worker hands them out again, so with no client the
restore is skipped instead of crashing.
"""

from __future__ import annotations

from typing import Any

import structlog
from kombu.transport import redis as kombu_redis

log = structlog.get_logger("onnxq.transport")

TRANSPORT = "onnxq.redis_transport:Transport"


class QoS(kombu_redis.QoS):
    """Redis QoS whose restore is a no-op once the connection was collected."""

    def restore_unacked(self, client: Any = None) -> None:
        if client is None and self.channel.connection.client is None:
            log.warning("unacked_left_for_visibility_sweep", messages=len(self._delivered))
            self._delivered.clear()
            return
        super().restore_unacked(client)


class Channel(kombu_redis.Channel):
    """kombu's Redis channel using `QoS` above."""

    QoS = QoS


class Transport(kombu_redis.Transport):
    """kombu's Redis transport using `Channel` above."""

    Channel = Channel
