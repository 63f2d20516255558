"""QueueDrain takes a micro-batch off a real redis-server in as few round trips as it can, and the
job store's script acknowledges it with the outcomes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from onnxq.broker import redis_transport
from onnxq.broker.celery_app import make_celery
from onnxq.broker.redis_client import connect_redis
from onnxq.broker.redis_transport import Channel
from onnxq.devtools.redis_server import RedisServer
from onnxq.jobs import keys
from onnxq.jobs.queue import JobQueue
from onnxq.jobs.store import JobStore
from onnxq.models.repository import ModelRepository
from onnxq.registry.demo import DEMO_MODEL_NAME
from onnxq.settings import Settings
from onnxq.telemetry.prediction_log import PredictionLog
from worker import batching
from worker.batching import QueueDrain, settle
from worker.job_stream import run_batch
from worker.runner import JobRunner

ONE_ROW = np.zeros((1, 30), dtype=np.float32)


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return Settings(_env_file=None, redis_url=redis_server.url)


@pytest.fixture
def drains(settings: Settings) -> Iterator[Callable[[float], QueueDrain]]:
    """QueueDrains on the test's Redis; each gives its messages back and closes before the server
    stops."""
    made: list[QueueDrain] = []

    def drain(wait_ms: float = settings.microbatch_wait_ms, **options: Any) -> QueueDrain:
        made.append(QueueDrain(make_celery(settings), settings.queue_name, wait_ms, **options))
        return made[-1]

    yield drain
    for each in made:
        each.reset()


def submit(settings: Settings, n: int, model: str = "m", notify: str | None = None) -> list[str]:
    """Queue `n` jobs as the gateway does; with `notify`, as a submit with `Prefer: wait`."""
    celery = make_celery(settings, main="onnxq-gateway")
    store = JobStore(connect_redis(settings.redis_url), ttl_seconds=3600)
    queue = JobQueue(celery, store, broker_is_store=True)
    return [
        queue.submit(model=model, version=1, matrix=ONE_ROW, notify=notify).job.job_id
        for _ in range(n)
    ]


def counted_takes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many messages each take round trip returned."""
    returned: list[int] = []
    take_reading = Channel.take_reading

    def counting(self: Channel, *args: Any, **kwargs: Any) -> list[Any]:
        taken = take_reading(self, *args, **kwargs)
        returned.append(len(taken))
        return taken

    monkeypatch.setattr(Channel, "take_reading", counting)
    return returned


def test_a_drain_that_empties_the_queue_does_not_ask_it_again(
    settings: Settings, drains: Callable[..., QueueDrain], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = submit(settings, 3)
    takes = counted_takes(monkeypatch)
    # No wait (the shipped 3 ms would look once more, or not, by how long the first take took).
    drain = drains(0)

    taken = drain.take(63)

    assert [job.job_id for job, _ in taken] == ids
    assert takes == [3]  # one round trip: three of the 63 asked for emptied the queue
    settle([message for _, message in taken], ok=True)


class Clock:
    """time.monotonic and time.sleep for the drain: sleeping moves the clock, nothing else."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_drain_with_a_wait_looks_at_the_emptied_queue_once_more_when_its_time_is_up(
    settings: Settings, drains: Callable[..., QueueDrain], monkeypatch: pytest.MonkeyPatch
) -> None:
    submit(settings, 2)
    takes = counted_takes(monkeypatch)
    clock = Clock()
    monkeypatch.setattr(batching, "time", clock)
    drain = drains(5)

    taken = drain.take(63)

    assert len(taken) == 2
    assert takes == [2, 0]  # the batch's two, then one look after the 5 ms (no polling)
    assert clock.now == pytest.approx(0.005)


def test_a_batch_no_client_waits_for_takes_the_longer_queued_wait(
    settings: Settings, drains: Callable[..., QueueDrain], monkeypatch: pytest.MonkeyPatch
) -> None:
    submit(settings, 2)  # 202 submits: their clients poll
    takes = counted_takes(monkeypatch)
    clock = Clock()
    monkeypatch.setattr(batching, "time", clock)
    drain = drains(5, queued_wait_ms=20)

    taken = drain.take(63)

    assert [job.awaited for job, _ in taken] == [False, False]
    assert takes == [2, 0]
    assert clock.now == pytest.approx(0.020)


@pytest.mark.parametrize("awaited_first", [True, False])
def test_a_job_a_client_waits_for_gives_its_batch_the_short_wait(
    settings: Settings,
    drains: Callable[..., QueueDrain],
    monkeypatch: pytest.MonkeyPatch,
    awaited_first: bool,
) -> None:
    """The task's own job (`awaited=`) or one taken into the batch: either shortens the wait."""
    submit(settings, 1)
    if not awaited_first:
        submit(settings, 1, notify="onnxq:waiters:gateway-1")  # a submit with Prefer: wait
    clock = Clock()
    monkeypatch.setattr(batching, "time", clock)
    drain = drains(5, queued_wait_ms=20)

    taken = drain.take(63, awaited=awaited_first)

    expected = [False] if awaited_first else [False, True]
    assert [job.awaited for job, _ in taken] == expected
    assert clock.now == pytest.approx(0.005)


def test_a_blocking_take_starts_its_wait_when_the_first_job_arrives(
    settings: Settings, drains: Callable[..., QueueDrain], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    take_reading = Channel.take_reading
    calls: list[float] = []

    def first_job_after_a_second(self: Channel, *args: Any, **kwargs: Any) -> list[Any]:
        calls.append(clock.now)
        if len(calls) == 1:
            clock.now += 1.0  # blocked a second before the job came
            submit(settings, 1)
        return take_reading(self, *args, **kwargs)

    monkeypatch.setattr(Channel, "take_reading", first_job_after_a_second)
    monkeypatch.setattr(batching, "time", clock)
    drain = drains(5)

    taken = drain.take(63, block_seconds=30)

    assert len(taken) == 1
    # The 5 ms counted from the job's arrival (1 s), not from the start of the blocking wait.
    assert calls == [0.0, pytest.approx(1.005)]


class GatherClock:
    """time for the transport: its gather wait submits `arrivals` more jobs instead of sleeping."""

    def __init__(self, settings: Settings, arrivals: int):
        self.settings, self.arrivals, self.slept = settings, arrivals, 0.0

    def time(self) -> float:
        import time

        return time.time()

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        submit(self.settings, self.arrivals)


def test_a_blocking_take_of_a_queue_found_empty_pops_then_takes_the_rest_in_one_script(
    settings: Settings,
    drains: Callable[..., QueueDrain],
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
) -> None:
    drain = drains(5)
    monkeypatch.setattr(batching, "time", Clock())
    assert drain.take(63) == []  # the queue is found empty
    clock = GatherClock(settings, arrivals=2)
    monkeypatch.setattr(redis_transport, "time", clock)
    first = submit(settings, 1)
    takes = counted_takes(monkeypatch)
    scripts = counted_scripts(monkeypatch, drain)
    brpops = commands(redis_server, "brpop")

    taken = drain.take(63, block_seconds=30)

    assert len(taken) == 3 and taken[0][0].job_id == first[0]  # the two that came meanwhile
    assert clock.slept == pytest.approx(0.005)  # the batch's wait, spent holding the first
    assert takes == [3]
    assert scripts == [1]  # one script recorded all three: no empty look before the pop,
    assert commands(redis_server, "brpop") == brpops + 1  # none after the wait
    settle([message for _, message in taken], ok=True)
    assert drain.take(63, block_seconds=0.01) == []


def test_a_gathered_batch_no_client_waits_for_waits_the_rest_of_its_wait_after_recording_it(
    settings: Settings, drains: Callable[..., QueueDrain], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The popped message is held unrecorded for the short wait only (docs/reliability.md); the
    rest of the queued wait passes with it in the unacknowledged hash."""
    drain = drains(5, queued_wait_ms=20)
    clock = Clock()
    monkeypatch.setattr(batching, "time", clock)
    assert drain.take(63) == []  # the queue is found empty
    gather = GatherClock(settings, arrivals=2)
    monkeypatch.setattr(redis_transport, "time", gather)
    submit(settings, 1)
    takes = counted_takes(monkeypatch)
    before = clock.now

    taken = drain.take(63, block_seconds=30)

    assert len(taken) == 3
    assert gather.slept == pytest.approx(0.005)  # holding the popped message
    assert clock.now - before == pytest.approx(0.015)  # then the rest, recorded
    assert takes == [3, 0]  # and one more look
    settle([message for _, message in taken], ok=True)


def counted_scripts(monkeypatch: pytest.MonkeyPatch, drain: QueueDrain) -> list[int]:
    """How many times the drain's channel ran its take script (one entry per take_reading)."""
    channel = drain._bound_queue().channel
    runs: list[int] = []
    take_reading = Channel.take_reading

    def counting(self: Channel, *args: Any, **kwargs: Any) -> list[Any]:
        script = self._take_many_script
        count = [0]

        def run(*a: Any, **k: Any) -> Any:
            count[0] += 1
            return script(*a, **k)

        self._take_many_script = run if script is not None else None
        try:
            return take_reading(self, *args, **kwargs)
        finally:
            self._take_many_script = script
            runs.append(count[0])

    assert channel._take_many_script is not None  # made by the drain's first take
    monkeypatch.setattr(Channel, "take_reading", counting)
    return runs


def commands(server: RedisServer, name: str) -> int:
    stats = redis.Redis(port=server.port).info("commandstats")
    return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))


def test_a_drain_stops_at_its_limit(
    settings: Settings, drains: Callable[..., QueueDrain], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = submit(settings, 5)
    takes = counted_takes(monkeypatch)
    drain = drains()

    taken = drain.take(4)

    assert [job.job_id for job, _ in taken] == ids[:4]
    assert takes == [4]
    settle([message for _, message in taken], ok=True)


def test_a_batch_is_read_as_it_is_taken_and_acknowledged_as_its_outcomes_are_stored(
    settings: Settings,
    drains: Callable[..., QueueDrain],
    demo_repository: ModelRepository,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = submit(settings, 3, model=DEMO_MODEL_NAME)
    client = redis.Redis.from_url(settings.redis_url)
    drain = drains(read_prefixes=(keys.JOB_PREFIX, keys.ROWS_PREFIX))
    taken = drain.take(63)
    assert client.hlen("unacked") == 3
    # Each job's record and rows came with its message, in the take's own round trip ...
    for job, _ in taken:
        assert job.stored == (client.get(keys.job(job.job_id)), client.get(keys.rows(job.job_id)))
    separate_acks: list[int] = []
    monkeypatch.setattr(Channel, "ack_many", lambda self, ms: separate_acks.append(len(ms)))
    reads: list[int] = []
    mget = redis.Redis.mget
    monkeypatch.setattr(
        redis.Redis, "mget", lambda self, *a, **k: reads.append(1) or mget(self, *a, **k)
    )
    store = JobStore(connect_redis(settings.redis_url), ttl_seconds=3600)
    runner = JobRunner(demo_repository, store, PredictionLog(tmp_path / "predictions"))

    outcomes = run_batch(runner, None, taken)

    assert [outcomes[job_id].status.value for job_id in ids] == ["succeeded"] * 3  # type: ignore[union-attr]
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0
    assert reads == []  # ... so the claim read nothing again
    assert separate_acks == []  # and the acknowledgement made no round trip of its own
    qos = taken[0][1].channel.qos
    qos._flush()
    assert not qos._delivered  # and forgotten in memory
