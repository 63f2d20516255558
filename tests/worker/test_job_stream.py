"""run_predict: the task's batch, then more batches off the queue while jobs keep coming."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from worker.job_stream import STREAM_SECONDS, StopFlag, run_predict, stream_seconds
from worker.runner import JobMessage


def message(number: int, rows: int = 1) -> JobMessage:
    return JobMessage(f"job-{number}", "m", 1, rows=rows, width=30)


@dataclass
class Held:
    """A kombu message as settle() uses it."""

    settled: list[str]
    name: str
    channel: Any = None

    def ack(self) -> None:
        self.settled.append(f"ack {self.name}")

    def requeue(self) -> None:
        self.settled.append(f"requeue {self.name}")


@dataclass
class Drain:
    """Hands out scripted batches; every take moves the clock by `step` seconds."""

    batches: list[list[int]]
    clock: list[float]
    step: float = 0.0
    takes: list[tuple[int, float]] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)

    def take(
        self, limit: int, block_seconds: float = 0.0, *, awaited: bool = False
    ) -> list[tuple[JobMessage, Held]]:
        self.takes.append((limit, block_seconds))
        self.clock[0] += self.step
        numbers = self.batches.pop(0) if self.batches else []
        return [(message(n), Held(self.settled, f"job-{n}")) for n in numbers]


@dataclass
class Runner:
    runs: list[list[str]] = field(default_factory=list)
    fail_on: int | None = None

    def run(self, messages: list[JobMessage], acknowledge: Any = None) -> dict[str, Any]:
        self.runs.append([m.job_id for m in messages])
        if self.fail_on == len(self.runs):
            raise RuntimeError("Redis went away")
        return {m.job_id: f"ended {m.job_id}" for m in messages}


def stream(
    drain: Drain,
    runner: Runner,
    first: JobMessage,
    linger: float = 0.2,
    stopping: Callable[[], bool] = lambda: False,
) -> Any:
    return run_predict(
        first,
        runner,  # type: ignore[arg-type]
        drain,  # type: ignore[arg-type]
        max_jobs=64,
        chunk_rows=10_000,
        linger_seconds=linger,
        stopping=stopping,
        clock=lambda: drain.clock[0],
    )


def test_the_task_keeps_taking_batches_until_one_take_finds_nothing() -> None:
    drain, runner = Drain([[1, 2], [3], [4, 5, 6]], clock=[0.0]), Runner()

    outcome = stream(drain, runner, message(0))

    assert outcome == "ended job-0"
    assert runner.runs == [["job-0", "job-1", "job-2"], ["job-3"], ["job-4", "job-5", "job-6"]]
    # The task's own batch takes what waits without waiting; later takes wait up to the linger.
    assert drain.takes == [(63, 0.0), (64, 0.2), (64, 0.2), (64, 0.2)]
    assert drain.settled == [f"ack job-{n}" for n in range(1, 7)]


def test_a_busy_task_hands_back_to_celery_after_the_stream_limit() -> None:
    endless = [[n] for n in range(1, 1000)]
    drain, runner = Drain(endless, clock=[0.0], step=0.5), Runner()

    stream(drain, runner, message(0))

    assert drain.clock[0] == pytest.approx(STREAM_SECONDS + 0.5)
    assert len(runner.runs) == 1 + int(STREAM_SECONDS / 0.5)
    # A wait never reaches past the limit.
    assert all(block <= STREAM_SECONDS for _, block in drain.takes)


def test_without_a_linger_the_task_runs_one_batch() -> None:
    drain, runner = Drain([[1], [2]], clock=[0.0]), Runner()

    stream(drain, runner, message(0), linger=0)

    assert runner.runs == [["job-0", "job-1"]]


def test_a_large_job_runs_alone_and_ends_the_task() -> None:
    drain, runner = Drain([[1], [2]], clock=[0.0]), Runner()

    stream(drain, runner, message(0, rows=50_000))

    assert runner.runs == [["job-0"]]
    assert drain.takes == []


def test_a_later_batch_that_raises_gives_its_messages_back() -> None:
    drain, runner = Drain([[1], [2, 3]], clock=[0.0]), Runner(fail_on=2)

    with pytest.raises(RuntimeError):
        stream(drain, runner, message(0))

    assert drain.settled == ["ack job-1", "requeue job-2", "requeue job-3"]


def test_a_worker_that_begins_to_shut_down_takes_no_more_batches() -> None:
    drain, runner = Drain([[1], [2], [3]], clock=[0.0]), Runner()
    flag = StopFlag()
    taken = drain.take

    def take_then_shut_down(
        limit: int, block_seconds: float = 0.0, *, awaited: bool = False
    ) -> list[tuple[JobMessage, Held]]:
        batch = taken(limit, block_seconds)
        if len(drain.takes) == 2:
            flag.set()  # SIGTERM arrives while the second batch is being taken
        return batch

    drain.take = take_then_shut_down  # type: ignore[method-assign]

    stream(drain, runner, message(0), stopping=flag.is_set)

    assert runner.runs == [["job-0", "job-1"]]  # the batch in hand ran ...
    assert drain.settled == ["ack job-1", "requeue job-2"]  # ... what came with SIGTERM went back


def test_a_task_handed_out_during_a_shutdown_runs_only_its_own_job() -> None:
    drain, runner = Drain([[1], [2]], clock=[0.0]), Runner()
    flag = StopFlag()
    flag.set()

    stream(drain, runner, message(0), stopping=flag.is_set)

    assert runner.runs == [["job-0"]]
    assert drain.takes == []


def test_the_stop_flag_raised_in_one_process_is_seen_in_a_process_forked_before() -> None:
    flag = StopFlag()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the pool process: wait for the parent's word, then look
        os.read(read, 1)
        os._exit(0 if flag.is_set() else 1)
    flag.set()
    os.write(write, b"x")
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_stream_leaves_each_job_nine_tenths_of_the_soft_time_limit() -> None:
    assert stream_seconds(240) == STREAM_SECONDS  # the shipped limit: 2 s
    assert stream_seconds(4) == pytest.approx(0.4)
