"""Faults with real processes: a restarted Redis, SIGTERM, a poison job, batching, a hung child.

Every stack runs the shipped defaults, except the hung-child test, whose subject is the hard time
limit (it sets a 6 s limit rather than wait 300 s). Killed workers under load, with the
defaults, are tests/integration/test_crash_recovery.py.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from onnxq.devtools.waiting import wait_until
from onnxq.jobs import keys
from onnxq.jobs.record import JobStatus, dump_job, load_job, utc_now
from onnxq.settings import Settings
from tests.integration.conftest import Stack, running_stack
from tests.support.live_jobs import (
    WORKER_PROCESSES,
    Reference,
    Rows,
    Submitter,
    ended,
    freeze_child_mid_job,
    job_events,
    job_rows,
    queued_job_ids,
    queued_messages,
    records,
    redis_client,
    running_since,
    statuses,
    unacked_messages,
    wait_all_ended,
)
from tests.support.live_jobs import data as data
from tests.support.live_jobs import reference as reference
from tests.support.prediction_log import prediction_lines

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = Settings.model_fields["job_max_attempts"].default
SOFT_LIMIT, HARD_LIMIT = 4, 6
SHORT_TIME_LIMITS = {
    "ONNXQ_TASK_SOFT_TIME_LIMIT_SECONDS": str(SOFT_LIMIT),
    "ONNXQ_TASK_TIME_LIMIT_SECONDS": str(HARD_LIMIT),
}
# Warm shutdown of a busy worker usually takes about 2 s. In some 5-20% of runs it takes
# 32 s, with a bare Celery app too: a pool child waits up to 30 s (billiard's
# GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT x _INTERVAL) for the main process to read a
# result it no longer reads. Allow for that rather than fail at random.
SHUTDOWN_BOUND = Settings.model_fields["task_time_limit_seconds"].default + 30 + 5


# --- the tests ------------------------------------------------------------------------------


def test_jobs_queued_across_a_graceful_redis_restart_all_succeed_and_the_gateway_says_503_meanwhile(
    tmp_path: Path, model_dir: Path, redis_binary: str, data: Rows, reference: Reference
) -> None:
    jobs = [job_rows(data, number) for number in range(200)]
    with running_stack(tmp_path, model_dir, redis_binary, with_worker=False) as stack:
        submitter = Submitter(stack)
        ids = submitter.submit_all(jobs)
        assert queued_messages(redis_client(stack)) == len(ids)

        stack.redis.stop()  # SIGTERM: redis-server flushes its AOF and exits
        session = requests.Session()
        wait_until(lambda: gateway_status(session, stack, "/ready") == 503, 5, "/ready 503")
        assert session.get(stack.url("/ready"), timeout=5).json()["checks"]["redis"] is False
        answers = [submitter.post(jobs[0]) for _ in range(5)]
        answers += [session.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10) for job_id in ids[:5]]
        assert [answer.status_code for answer in answers] == [503] * 10
        assert {answer.json()["error"]["type"] for answer in answers} == {"queue_unavailable"}
        assert session.get(stack.url("/health"), timeout=5).status_code == 200

        stack.redis.start()  # same port, same directory: the AOF is replayed
        back = time.monotonic()
        wait_until(lambda: gateway_status(session, stack, "/ready") == 200, 5, "/ready 200")
        assert time.monotonic() - back < 5
        client = redis_client(stack)
        assert Counter(statuses(client, ids).values()) == {"queued": len(ids)}
        assert queued_messages(client) == len(ids)
        [after] = submitter.submit_all([jobs[1]])  # the gateway's broker connection is back

        stack.start_worker()
        final = wait_all_ended(client, [*ids, after], 60)
        for job_id, rows in zip([*ids, after], [*jobs, jobs[1]], strict=True):
            reference.check(final[job_id], rows)


def gateway_status(session: requests.Session, stack: Stack, path: str) -> int | None:
    try:
        return session.get(stack.url(path), timeout=2).status_code
    except requests.RequestException:
        return None


def test_sigterm_lets_a_busy_worker_finish_its_running_jobs_and_give_back_the_rest(
    tmp_path: Path, model_dir: Path, redis_binary: str, data: Rows, reference: Reference
) -> None:
    max_jobs = 4
    env = {"ONNXQ_MICROBATCH_MAX_JOBS": str(max_jobs)}
    # Running tasks may still take up to max_jobs - 1 messages each off the queue after
    # SIGTERM; more than that must be waiting for "the rest" to exist.
    enough_waiting = WORKER_PROCESSES * max_jobs
    jobs = [job_rows(data, number) for number in range(300)]
    with running_stack(
        tmp_path, model_dir, redis_binary, extra_env=env, with_worker=False
    ) as stack:
        client = redis_client(stack)
        submitter = Submitter(stack)
        ids = submitter.submit_all(jobs)
        first = stack.start_worker()
        assert first.process is not None
        wait_until(lambda: ended(client, ids) >= 90, 30, "30% of the jobs to end")

        # Catch the worker, frozen, with jobs running and more waiting in the queue, then
        # ask it to stop. Should the queue run low, more jobs are submitted while it is
        # frozen, so that it cannot run dry before the next look.
        group = first.process.pid
        top_ups = 0
        for _ in range(300):
            os.killpg(group, signal.SIGSTOP)
            try:
                in_flight = running_since(client, ids, utc_now())
                queued_at_sigterm = queued_messages(client)
                if in_flight and queued_at_sigterm > enough_waiting:
                    break
                if queued_at_sigterm <= enough_waiting:
                    more = [job_rows(data, number) for number in range(len(jobs), len(jobs) + 100)]
                    ids += submitter.submit_all(more)
                    jobs += more
                    top_ups += 1
            except BaseException:
                os.killpg(group, signal.SIGCONT)
                raise
            os.killpg(group, signal.SIGCONT)
            time.sleep(random.uniform(0.001, 0.01))  # not in step with the worker's rhythm
        else:
            raise AssertionError("the worker was never caught running a job")
        # The main process alone runs again and handles SIGTERM (Celery says "Warm shutdown"
        # and, in the same handler, onnxq sets the stop flag); only then do the children run
        # on: they finish the batch in hand and take no more. Resumed together, the children
        # could run the whole queue in the milliseconds before the main process is scheduled.
        first.process.send_signal(signal.SIGTERM)
        sigterm_at = time.monotonic()
        os.kill(first.process.pid, signal.SIGCONT)
        try:
            wait_until(lambda: "Warm shutdown" in first.output(), 30, "the warm shutdown")
        finally:
            os.killpg(group, signal.SIGCONT)
        assert first.process.wait(SHUTDOWN_BOUND) == 0, first.output()[-3000:]
        shutdown_seconds = time.monotonic() - sigterm_at

        after = records(client, ids)
        left = Counter(job.status.value for job in after.values() if job)
        # The jobs it was running finished there, once; nothing is left half done.
        for job_id in in_flight:
            job = after[job_id]
            assert job is not None
            assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
        assert "running" not in left
        # What it had reserved but not started went back to the queue: every job not yet
        # run has its message there (and nothing is held by the dead consumer).
        assert unacked_messages(client) == 0
        assert left["queued"] > 0
        waiting = queued_job_ids(client)
        queued = {job_id for job_id, job in after.items() if job and job.status.value == "queued"}
        assert queued <= set(waiting)
        extra = set(waiting) - queued  # duplicates: harmless, the next worker skips them
        assert all(after[job_id] and after[job_id].status.ended for job_id in extra)  # type: ignore[union-attr]
        print(
            f"\nSIGTERM with {len(in_flight)} running and {queued_at_sigterm} queued "
            f"({len(ids)} jobs, {top_ups} top-ups), exit after {shutdown_seconds:.1f}s; "
            f"left {dict(left)}; duplicate messages {len(extra)}"
        )

        stack.start_worker()
        final = wait_all_ended(client, ids, 60)
        for job_id, rows in zip(ids, jobs, strict=True):
            reference.check(final[job_id], rows)
        assert Counter(job.attempts for job in final.values() if job) == {1: len(ids)}


def test_a_poison_job_is_failed_once_and_never_run_again_while_its_neighbours_succeed(
    tmp_path: Path, model_dir: Path, redis_binary: str, data: Rows, reference: Reference
) -> None:
    with running_stack(tmp_path, model_dir, redis_binary, with_worker=False) as stack:
        client = redis_client(stack)
        rows = [data[0:2], data[2:3], data[3:6]]
        poison, last_chance, normal = Submitter(stack).submit_all(rows)

        # As the records look after workers died running these jobs: 3 times, and twice.
        def lost(job_id: str, attempts: int) -> None:
            key = keys.job(job_id)
            job = load_job(client.get(key))
            job = job.model_copy(
                update={"status": JobStatus.RUNNING, "started_at": utc_now(), "attempts": attempts}
            )
            assert client.set(key, dump_job(job), keepttl=True, xx=True)

        lost(poison, MAX_ATTEMPTS)
        lost(last_chance, MAX_ATTEMPTS - 1)

        worker = stack.start_worker()
        ids = [poison, last_chance, normal]
        final = wait_all_ended(client, ids, 30)
        # Each job has said what it did, and no message of any of them is left, neither in
        # the queue nor held unacknowledged by the worker: none can be delivered again.
        wait_until(
            lambda: (
                queued_messages(client) == unacked_messages(client) == 0
                and {e.get("job_id") for e in job_events(worker)} >= set(ids)
            ),
            10,
            "every message acknowledged and a job event for every job",
        )

        response = requests.get(stack.url(f"/v1/jobs/{poison}"), timeout=5)
        assert response.status_code == 200
        document = response.json()
        assert document["status"] == "failed"
        assert document["error"]["type"] == "poison_job"
        assert "result" not in document
        [event] = [e for e in job_events(worker) if e.get("job_id") == poison]
        assert (event["status"], event["error_type"]) == ("failed", "poison_job")
        assert event["attempts"] == MAX_ATTEMPTS
        assert poison not in {line["job_id"] for line in prediction_lines(stack.prediction_log_dir)}

        reference.check(final[last_chance], rows[1])
        reference.check(final[normal], rows[2])
        [third] = [e for e in job_events(worker) if e.get("job_id") == last_chance]
        assert (third["status"], third["attempt"]) == ("succeeded", MAX_ATTEMPTS)


def test_jobs_waiting_in_the_queue_are_run_in_micro_batches_with_correct_results(
    tmp_path: Path, model_dir: Path, redis_binary: str, data: Rows, reference: Reference
) -> None:
    max_jobs = 32
    env = {"ONNXQ_MICROBATCH_MAX_JOBS": str(max_jobs)}
    jobs = [[data[(number * 7) % len(data)]] for number in range(300)]
    with running_stack(
        tmp_path, model_dir, redis_binary, extra_env=env, with_worker=False
    ) as stack:
        client = redis_client(stack)
        ids = Submitter(stack).submit_all(jobs)

        worker = stack.start_worker()
        final = wait_all_ended(client, ids, 30)

        for job_id, rows in zip(ids, jobs, strict=True):
            reference.check(final[job_id], rows)
        wait_until(
            lambda: len([e for e in job_events(worker) if e.get("job_id") in final]) == len(ids),
            30,
            "a job event for every job",
        )
        events = [e for e in job_events(worker) if e.get("job_id") in final]
        assert {e["status"] for e in events} == {"succeeded"}
        sizes = [e["batch_jobs"] for e in events]
        print(f"\nbatch sizes {Counter(sizes)}")
        assert sum(1 for size in sizes if size >= 2) >= len(ids) / 2, Counter(sizes)
        assert max(sizes) <= max_jobs


def test_a_job_whose_worker_child_hangs_past_the_hard_time_limit_is_delivered_again(
    tmp_path: Path, model_dir: Path, redis_binary: str, data: Rows, reference: Reference
) -> None:
    # docs/reliability.md: a process stuck past task_time_limit "is killed; its message is
    # redelivered and counted as an attempt".
    env = {**SHORT_TIME_LIMITS, "ONNXQ_MICROBATCH_MAX_JOBS": "1"}
    jobs = [job_rows(data, number) for number in range(300)]
    with running_stack(
        tmp_path, model_dir, redis_binary, extra_env=env, with_worker=False
    ) as stack:
        client = redis_client(stack)
        ids = Submitter(stack).submit_all(jobs)
        worker = stack.start_worker()
        wait_until(lambda: ended(client, ids) >= 30, 30, "the first jobs to end")

        # A child stuck in native code ignores the soft limit: a frozen one does too.
        _child, [stuck] = freeze_child_mid_job(worker, client, ids)
        wait_until(
            lambda: "Hard time limit" in worker.output(),
            HARD_LIMIT + 5,
            "the hard time limit to kill the stuck child",
        )

        # The stuck job may be the task's own (Celery gives it back as the child dies) or one
        # the task took off the queue after it (back once its lease lapses: the visibility
        # timeout, 30 s by default).
        final = wait_all_ended(client, ids, 60)
        for job_id, rows in zip(ids, jobs, strict=True):
            reference.check(final[job_id], rows)
        job = final[stuck]
        assert job is not None
        assert job.attempts == 2
