"""The predict task's body: its job with the jobs waiting behind it, then more while they come.

A Celery task carries one job. The task takes the jobs queued behind it into the same
session.run (worker/batching.py), and then, instead of handing back to Celery after every
batch, keeps taking batches straight off the queue while jobs keep arriving: a busy process
pays Celery's per-task round trips (the consumer's BRPOP and record, the hand-off to the pool
and back, the acknowledgement) once per stream instead of once per batch. It hands back after
`linger` with nothing to take, after `stream_seconds` at most (so that the process's other
queues, callbacks and housekeeping, wait at most that long), and as soon as its worker begins
to shut down (StopFlag): a warm shutdown finishes the batch in hand and takes no more.
"""

from __future__ import annotations

import mmap
import time
from collections.abc import Callable

from kombu import Message

from onnxq.jobs.record import Job
from worker.batching import QueueDrain, acknowledgement, settle
from worker.runner import JobMessage, JobRunner

# The longest one predict task keeps taking batches before it hands back to Celery.
STREAM_SECONDS = 2.0
# Celery's time limits count from the task's start, so a job taken late in a stream would have
# less than its soft time limit left: a stream ends by this share of the limit, which leaves
# every job in it at least 90% of its own.
STREAM_SHARE_OF_SOFT_LIMIT = 0.1


def stream_seconds(soft_time_limit_seconds: float) -> float:
    """How long a predict task may keep taking batches, under a given soft time limit."""
    return min(STREAM_SECONDS, soft_time_limit_seconds * STREAM_SHARE_OF_SOFT_LIMIT)


class StopFlag:
    """Raised in the worker's main process when it begins to shut down, seen by its pool
    processes: one byte of shared memory made before they are forked (no round trip to read)."""

    def __init__(self) -> None:
        self._byte = mmap.mmap(-1, 1)  # anonymous and shared: inherited by forked children

    def set(self) -> None:
        self._byte[0] = 1

    def is_set(self) -> bool:
        return self._byte[0] == 1


def run_batch(
    runner: JobRunner, first: JobMessage | None, extras: list[tuple[JobMessage, Message]]
) -> dict[str, Job | None]:
    """Run one batch; its extra messages are acknowledged with the outcomes (same script) or once
    they are stored, or given back if the batch raised."""
    messages = [first] if first is not None else []
    held = [message for _, message in extras]
    acknowledge = acknowledgement(held)
    try:
        outcomes = runner.run([*messages, *(job for job, _ in extras)], acknowledge)
    except BaseException:
        settle(held, ok=False)
        raise
    if acknowledge is not None:
        held[0].channel.acknowledged(held)
    else:
        settle(held, ok=True)
    return outcomes


def run_predict(
    first: JobMessage,
    runner: JobRunner,
    drain: QueueDrain,
    *,
    max_jobs: int,
    chunk_rows: int,
    linger_seconds: float,
    stream_seconds: float = STREAM_SECONDS,
    stopping: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
) -> Job | None:
    """Run the task's job (and the jobs behind it); return its final state."""
    small = first.rows < chunk_rows
    # A task handed out while its worker shuts down runs its own job and takes no others.
    extras = drain.take(max_jobs - 1, awaited=first.awaited) if small and not stopping() else []
    outcome = run_batch(runner, first, extras)[first.job_id]
    if not small or linger_seconds <= 0:
        return outcome
    deadline = clock() + stream_seconds
    while clock() < deadline and not stopping():
        more = drain.take(max_jobs, block_seconds=min(linger_seconds, deadline - clock()))
        if not more:
            break
        if stopping():  # the shutdown began while they were being taken: give them back
            settle([message for _, message in more], ok=False)
            break
        run_batch(runner, None, more)
    return outcome
