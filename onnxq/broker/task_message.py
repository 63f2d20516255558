"""A Celery task message, encoded as Celery and kombu push it onto the broker's Redis list.

The submit path writes a job's record, its rows and its predict message in ONE Redis transaction
(onnxq/jobs/store.py `create(..., message=)`): one round trip instead of two, no window in which
a record exists without its message, and ~0.25 ms less CPU per submit than Celery's
`send_task`, whose producer pool, routing copies and retry wrapper cost more than the rest of the
submit together.

Celery builds the message (`app.amqp.as_task_v2`, its protocol 2); this module does only what
kombu's producer and Redis channel then do with it for a queue on the default exchange: JSON body,
base64, delivery info and tag, `LPUSH <queue>`. tests/onnxq/broker/test_task_message.py holds
it to what `send_task` pushes, field for field (apart from the random delivery tag), so a
Celery or kombu upgrade that changes the form fails there, not in production.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from celery import Celery

# kombu's Redis transport keeps priority 0 messages in the list named after the queue.
DEFAULT_PRIORITY = 0
PERSISTENT = 2  # kombu's delivery_mode for durable queues, which Celery's are
# A message header (not a task argument, so that a worker of an older release ignores it): a
# client waits for this job in its request (Prefer: wait), so its batch takes the short wait.
AWAITED_HEADER = "onnxq_awaited"


@dataclass(frozen=True)
class QueuedMessage:
    """A message ready to be pushed: the broker list it goes on, and its bytes."""

    key: str
    payload: bytes


@dataclass(frozen=True)
class Acknowledgement:
    """Messages to acknowledge in the job store's script that stores their jobs' outcomes: the
    transport's hash and index of unacknowledged messages, and their delivery tags
    (onnxq/broker/redis_transport.py `Channel.acknowledgement`)."""

    hash_key: str
    index_key: str
    tags: list[str]


def encode_task(
    app: Celery,
    task: str,
    kwargs: dict[str, Any],
    task_id: str,
    queue: str,
    headers: Mapping[str, Any] | None = None,
) -> QueuedMessage:
    """The message `app.send_task(task, kwargs=kwargs, task_id=task_id, ignore_result=True,
    headers=headers)` would push onto `queue`, with the short reprs onnxq always sends."""
    argsrepr, kwargsrepr = "()", f"{{job_id: {kwargs.get('job_id')}}}"
    headers_v2, properties, body, _ = app.amqp.as_task_v2(
        task_id,
        task,
        args=(),
        kwargs=kwargs,
        ignore_result=True,
        reply_to=app.thread_oid,  # as send_task: the app's reply queue
        argsrepr=argsrepr,
        kwargsrepr=kwargsrepr,
    )
    if headers:
        headers_v2.update(headers)  # as send_task merges its `headers` option
    message = {
        "body": base64.b64encode(orjson.dumps(body)).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers_v2,
        "properties": {
            **properties,
            # send_task passes these options on to the producer, which keeps them as properties.
            "argsrepr": argsrepr,
            "kwargsrepr": kwargsrepr,
            "delivery_mode": PERSISTENT,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": DEFAULT_PRIORITY,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return QueuedMessage(queue, orjson.dumps(message))
