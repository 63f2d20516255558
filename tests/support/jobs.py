"""Jobs as the gateway sends them and as a worker receives them.

`JobBroker.submit` queues rows with the gateway's own code (rows_to_matrix, then
JobQueue.submit) over onnxq's Celery app on kombu's in-memory transport, and
`take_messages` takes them off the queue with the worker's own code
(worker.batching.QueueDrain: kombu's Message.decode, then JobMessage), so what a
test hands to JobRunner.run is exactly what a worker would. `run_next_message`
goes one step further, as a Celery worker does: it hands the decoded message to
the registered task itself (worker/app.py), batch-mates, acks and all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from celery import Celery
from celery.worker.request import Request
from kombu import Exchange, Queue

from onnxq.jobs.queue import JobQueue
from onnxq.jobs.record import Job
from onnxq.jobs.store import JobStore
from onnxq.models.inputs import rows_to_matrix
from onnxq.models.repository import ModelRepository
from onnxq.settings import Settings
from tests.support.broker import UNREACHABLE_REDIS, in_memory_celery
from worker.app import create_worker_app
from worker.batching import QueueDrain, settle
from worker.runner import JobMessage


def private_queue_name() -> str:
    """kombu's memory transport is shared by the whole process: one queue per test."""
    return f"test-{uuid.uuid4().hex}"


def take_messages(celery: Celery, queue_name: str, job_id: str | None = None) -> list[JobMessage]:
    """Take the waiting predict messages off `queue_name` as a worker does, and acknowledge them.

    With `job_id`, only that job's messages are taken; the others are given back.
    """
    drain = QueueDrain(celery, queue_name, wait_ms=0)
    try:
        mine, others = [], []
        for job, message in drain.take(limit=10_000):
            if job_id is None or job.job_id == job_id:
                mine.append(job)
                settle([message], ok=True)
            else:
                others.append(message)
        settle(others, ok=False)
    finally:
        drain.reset()
    return mine


@dataclass
class JobBroker:
    """The gateway's submit path and a worker's receiving end around one private queue."""

    store: JobStore
    repository: ModelRepository
    queue_name: str
    celery: Celery

    @classmethod
    def create(cls, store: JobStore, repository: ModelRepository) -> JobBroker:
        queue_name = private_queue_name()
        settings = Settings(_env_file=None, redis_url=UNREACHABLE_REDIS, queue_name=queue_name)
        return cls(store, repository, queue_name, in_memory_celery(settings))

    @property
    def queue(self) -> JobQueue:
        return JobQueue(self.celery, self.store)

    def submit(self, instances: list[Any], model: str, version: int = 1, **fields: Any) -> Job:
        """Validate the rows against the model's manifest and queue them, as the gateway does."""
        matrix = rows_to_matrix(instances, self.repository.manifest(model, version))
        return self.submit_matrix(matrix, model, version, **fields)

    def submit_matrix(self, matrix: np.ndarray, model: str, version: int = 1, **fields: Any) -> Job:
        """Queue an already validated matrix (or one the gateway would have refused)."""
        return self.queue.submit(model=model, version=version, matrix=matrix, **fields).job

    def take(self, job_id: str | None = None) -> list[JobMessage]:
        """The waiting messages, as the worker receives them."""
        return take_messages(self.celery, self.queue_name, job_id)

    def take_one(self, job_id: str | None = None) -> JobMessage:
        [message] = self.take(job_id)
        return message


def in_memory_worker_app(settings: Settings) -> Celery:
    """The worker's Celery app (tasks, runtime and all) on kombu's in-memory transport."""
    app = create_worker_app(settings)
    app.conf.broker_url = "memory://"
    app.conf.broker_transport = None  # let the URL choose, not onnxq's Redis transport
    return app


def execute_next_message(app: Celery, queue_name: str) -> Any:
    """Run the next message on `queue_name` through Celery's own worker request (headers into
    the task's request context, trace, acknowledgement), as a pool process does; returns what
    the task returned (an exception comes back as Celery's ExceptionInfo, not raised)."""
    exchange = Exchange(queue_name, type="direct")
    with app.connection_for_read() as connection:
        queue = Queue(queue_name, exchange, routing_key=queue_name)(connection.default_channel)
        message = queue.get(no_ack=False, accept=["json"])
        assert message is not None, f"no message waiting in {queue_name}"
        task = app.tasks[message.headers["task"]]
        return Request(message, app=app, task=task).execute()


def run_next_message(app: Celery, queue_name: str) -> Any:
    """Do what a Celery worker does with the next message on `queue_name`.

    Decode it, call the task its headers name with its arguments, and acknowledge it
    once the task has returned (acks_late). Returns what the task returned.
    """
    exchange = Exchange(queue_name, type="direct")
    with app.connection_for_read() as connection:
        queue = Queue(queue_name, exchange, routing_key=queue_name)(connection.default_channel)
        message = queue.get(no_ack=False, accept=["json"])
        assert message is not None, f"no message waiting in {queue_name}"
        args, kwargs, _embed = message.decode()
        returned = app.tasks[message.headers["task"]](*args, **kwargs)
        message.ack()
    return returned
