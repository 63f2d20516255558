"""Every accepted job ends, with the shipped defaults, when workers are killed mid-burst.

Nothing here shortens a timeout: the visibility timeout, the reconciler's interval and staleness
are the defaults users run with. Workers are SIGKILLed while they hold micro-batches taken on their
own connection (the drain) and jobs Celery reserved for them; the leases on those messages stop
being renewed, so Redis hands them out again once the visibility timeout has passed.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
import redis

from drift.log_reader import read_window
from drift.profile import ReferenceProfile
from onnxq.devtools.waiting import wait_until
from onnxq.registry.demo import DEMO_MODEL_NAME
from onnxq.settings import Settings
from tests.integration.conftest import Stack, running_stack
from tests.support.live_jobs import (
    WORKER_PROCESSES,
    Reference,
    Rows,
    Submitter,
    beat_running,
    ended,
    freeze_child_mid_job,
    queued_messages,
    redis_client,
    statuses,
    unacked_job_ids,
    unacked_messages,
    wait_all_ended,
)
from tests.support.live_jobs import data as data
from tests.support.live_jobs import reference as reference
from tests.support.prediction_log import prediction_lines

pytestmark = pytest.mark.integration

JOBS = 4000
RECOVERY_BOUND = 60.0  # every job ends within this long of the replacement worker's start
TOP_UP = 1500  # jobs added to the queue before each later kill
HOLD_SEARCH_SECONDS = 120.0
MAX_BATCH = Settings.model_fields["microbatch_max_jobs"].metadata[-1].le


def children_ready(stack: Stack, worker, offset: int, processes: int) -> bool:
    """The worker has its full set of children again, each with its models loaded."""
    assert worker.process is not None
    children = psutil.Process(worker.process.pid).children()
    ready = worker.output()[offset:].count('"worker_process_ready"')
    return len(children) == WORKER_PROCESSES and ready >= processes


def kill_worker_holding_jobs(worker, client: redis.Redis, stranded: set[str]) -> set[str]:
    """SIGKILL the whole worker (main process and children) while it holds messages of its own.

    Frozen first (SIGSTOP to its process group), so the jobs whose messages are unacknowledged
    then, apart from those the killed children left behind, are exactly what this kill strands:
    the jobs Celery reserved for the children and the micro-batches they took.
    """
    assert worker.process is not None
    group = worker.process.pid  # started with start_new_session=True: it leads its group
    # Looked for until it happens (a loaded machine can take a while), not a fixed number of tries.
    deadline = time.monotonic() + HOLD_SEARCH_SECONDS
    unacked: set[str] = set()
    while time.monotonic() < deadline:
        os.killpg(group, signal.SIGSTOP)
        try:
            unacked = set(unacked_job_ids(client))
        except BaseException:
            os.killpg(group, signal.SIGCONT)
            raise
        if held := unacked - stranded:
            os.killpg(group, signal.SIGKILL)
            worker.process.wait(10)
            return held
        os.killpg(group, signal.SIGCONT)
        time.sleep(random.uniform(0.001, 0.01))  # not in step with the worker's rhythm
    raise AssertionError(
        f"the worker held no message of its own in {HOLD_SEARCH_SECONDS:.0f} s "
        f"({len(unacked)} unacknowledged, all left by the killed children)"
    )


def top_up(worker, submitter: Submitter, jobs: list[Rows]) -> list[str]:
    """Submit `jobs` while the worker is frozen, so they are all waiting when it thaws."""
    assert worker.process is not None
    os.killpg(worker.process.pid, signal.SIGSTOP)
    try:
        return submitter.submit_all(jobs)
    finally:
        os.killpg(worker.process.pid, signal.SIGCONT)


def readers_count(stack: Stack) -> int:
    """Rows the drift check counts for the demo model: each (job, row) once."""
    profile = ReferenceProfile.load(stack.model_dir / DEMO_MODEL_NAME / "1" / "profile.json")
    window = read_window(
        profile,
        stack.prediction_log_dir,
        DEMO_MODEL_NAME,
        now=datetime.now(UTC) + timedelta(minutes=1),
    )
    return window.rows


@pytest.mark.parametrize("batch", [None, MAX_BATCH], ids=["batch-default", "batch-max"])
def test_every_job_succeeds_after_two_child_kills_and_a_whole_worker_kill(
    tmp_path: Path,
    model_dir: Path,
    redis_binary: str,
    data: Rows,
    reference: Reference,
    batch: int | None,
) -> None:
    env = {} if batch is None else {"ONNXQ_MICROBATCH_MAX_JOBS": str(batch)}
    jobs = [[data[(number * 37) % len(data)]] for number in range(JOBS + 3 * TOP_UP)]
    with (
        running_stack(tmp_path, model_dir, redis_binary, extra_env=env, with_worker=False) as stack,
        beat_running(stack, tmp_path),
    ):
        client: redis.Redis = redis_client(stack)
        submitter = Submitter(stack)
        ids = submitter.submit_all(jobs[:JOBS])  # all queued before any worker runs
        assert Counter(statuses(client, ids).values()) == {"queued": JOBS}
        worker = stack.start_worker()
        log_path = stack.directory / "worker.log"

        # The worker runs thousands of jobs a second: rather than hope some are still in flight
        # when the test gets round to a kill, it tops the queue up before each kill, with the
        # worker frozen meanwhile (a few seconds, well inside the visibility timeout).
        stranded: set[str] = set()
        for kill in (1, 2):
            if kill > 1:
                ids += top_up(worker, submitter, jobs[len(ids) : len(ids) + TOP_UP])
            offset = log_path.stat().st_size
            child, victims = freeze_child_mid_job(worker, client, ids)
            os.kill(child, signal.SIGKILL)
            stranded |= victims
            # Celery replaces the child; the next kill needs both children up again.
            wait_until(
                lambda o=offset: children_ready(stack, worker, o, 1), 60, "a replacement child"
            )

        ids += top_up(worker, submitter, jobs[len(ids) : len(ids) + TOP_UP])
        held = kill_worker_holding_jobs(worker, client, stranded)
        assert ended(client, ids) < len(ids)
        jobs = jobs[: len(ids)]

        restarted = time.monotonic()
        replacement = stack.start_worker()
        final = wait_all_ended(client, ids, RECOVERY_BOUND - (time.monotonic() - restarted))
        recovery = time.monotonic() - restarted
        for job_id, rows in zip(ids, jobs, strict=True):
            reference.check(final[job_id], rows)
        # Redeliveries of jobs that had ended may still wait; the worker skips them.
        wait_until(
            lambda: queued_messages(client) == unacked_messages(client) == 0,
            60,
            "every message consumed and acknowledged",
        )

        # At least once underneath, exactly once for readers.
        lines = prediction_lines(stack.prediction_log_dir)
        assert {(line["job_id"], line["row"]) for line in lines} == {(i, 0) for i in ids}
        assert readers_count(stack) == len(ids)
        attempts = Counter(job.attempts for job in final.values() if job)
        print(
            f"\nbatch {batch or 'default'}: child victims {len(stranded)}, messages the "
            f"killed worker held {len(held)}; all {len(ids)} ended {recovery:.1f}s after the "
            f"replacement started; log lines {len(lines)} for {len(ids)} rows; attempts "
            f"{dict(attempts)}; re-sent by the reconciler "
            f"{worker.output().count('job_resent') + replacement.output().count('job_resent')}"
        )
