"""QueueDrain takes a micro-batch off a real redis-server in as few round trips as it can."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from onnxq.broker.celery_app import make_celery
from onnxq.broker.redis_client import connect_redis
from onnxq.broker.redis_transport import Channel
from onnxq.devtools.redis_server import RedisServer
from onnxq.jobs.queue import JobQueue
from onnxq.jobs.store import JobStore
from onnxq.settings import Settings
from worker.batching import QueueDrain, settle

ONE_ROW = np.zeros((1, 30), dtype=np.float32)


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return Settings(_env_file=None, redis_url=redis_server.url)


def submit(settings: Settings, n: int) -> list[str]:
    celery = make_celery(settings, main="onnxq-gateway")
    store = JobStore(connect_redis(settings.redis_url), ttl_seconds=3600)
    queue = JobQueue(celery, store, broker_is_store=True)
    return [queue.submit(model="m", version=1, matrix=ONE_ROW).job.job_id for _ in range(n)]


def counted_takes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many messages each take_many round trip returned."""
    returned: list[int] = []
    take_many = Channel.take_many

    def counting(self: Channel, *args: Any, **kwargs: Any) -> list[Any]:
        messages = take_many(self, *args, **kwargs)
        returned.append(len(messages))
        return messages

    monkeypatch.setattr(Channel, "take_many", counting)
    return returned


def test_a_drain_that_empties_the_queue_does_not_ask_it_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = submit(settings, 3)
    takes = counted_takes(monkeypatch)
    drain = QueueDrain(make_celery(settings), settings.queue_name, settings.microbatch_wait_ms)

    taken = drain.take(63)

    assert [job.job_id for job, _ in taken] == ids
    assert takes == [3]  # one round trip: three of the 63 asked for emptied the queue
    settle([message for _, message in taken], ok=True)
    drain.reset()


def test_a_drain_with_a_wait_asks_the_emptied_queue_again_until_its_time_is_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    submit(settings, 2)
    takes = counted_takes(monkeypatch)
    drain = QueueDrain(make_celery(settings), settings.queue_name, wait_ms=5)

    taken = drain.take(63)

    assert len(taken) == 2
    assert takes[0] == 2 and len(takes) >= 2 and set(takes[1:]) == {0}
    settle([message for _, message in taken], ok=True)
    drain.reset()


def test_a_drain_stops_at_its_limit(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = submit(settings, 5)
    takes = counted_takes(monkeypatch)
    drain = QueueDrain(make_celery(settings), settings.queue_name, settings.microbatch_wait_ms)

    taken = drain.take(4)

    assert [job.job_id for job, _ in taken] == ids[:4]
    assert takes == [4]
    settle([message for _, message in taken], ok=True)
    drain.reset()
