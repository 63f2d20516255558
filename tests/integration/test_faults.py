"""Faults with real processes: killed workers, a restarted Redis, SIGTERM, a poison job, batching.

Every stack here redelivers fast: a message reserved by a consumer that died comes back
VISIBILITY seconds later (kombu restores it when a worker's consumer starts, which is
why a replacement worker is started only once that much time has passed since a kill).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import psutil
import pytest
import redis
import requests
from sklearn.datasets import load_breast_cancer

from onnxq.devtools.processes import ServiceProcess, start_beat
from onnxq.jobs.store import Job, JobStatus, JobStore, dump_job, load_job, utc_now
from onnxq.models.manifest import MODEL_FILE
from onnxq.registry.demo import DEMO_MODEL_NAME
from tests.integration.conftest import Stack, running_stack
from tests.support.log_events import events
from tests.support.prediction_log import prediction_lines
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

JOBS_PATH = f"/v1/models/{DEMO_MODEL_NAME}/jobs"
QUEUE = "onnxq.predict"  # Settings.queue_name
KOMBU_PRIORITY_SEP = "\x06\x16"
VISIBILITY, SOFT_LIMIT, HARD_LIMIT = 8, 4, 6
MAX_ATTEMPTS = 3  # Settings.job_max_attempts
FAST_REDELIVERY = {
    "ONNXQ_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY),
    "ONNXQ_TASK_SOFT_TIME_LIMIT_SECONDS": str(SOFT_LIMIT),
    "ONNXQ_TASK_TIME_LIMIT_SECONDS": str(HARD_LIMIT),
}
FAST_RECONCILE = {"ONNXQ_RECONCILE_INTERVAL_SECONDS": "2", "ONNXQ_RECONCILE_STALE_SECONDS": "10"}
WORKER_PROCESSES = 2  # ONNXQ_WORKER_CONCURRENCY in the integration stack
# Warm shutdown of a busy worker usually takes about 2 s. In some 5-20% of runs it takes
# 32 s, with a bare Celery app too: a pool child waits up to 30 s (billiard's
# GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT x _INTERVAL) for the main process to read a
# result it no longer reads. Allow for that rather than fail at random.
SHUTDOWN_BOUND = HARD_LIMIT + 30 + 5

Rows = list[list[float]]


# --- the data and what onnxruntime says about it ------------------------------------------


@pytest.fixture(scope="module")
def data() -> Rows:
    """Rows exactly as a client would send them: the data set's own decimals."""
    return load_breast_cancer().data.tolist()  # type: ignore[no-any-return]


class Reference:
    """The demo model run directly in onnxruntime, one thread, like the worker's sessions."""

    def __init__(self, model_dir: Path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_dir / DEMO_MODEL_NAME / "1" / MODEL_FILE),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )

    def check(self, job: Job | None, rows: Rows) -> None:
        """Assert that a stored job succeeded with exactly onnxruntime's answer for its rows."""
        assert job is not None, "job record lost"
        assert job.status is JobStatus.SUCCEEDED, (job.job_id, job.status, job.error)
        assert job.result is not None
        labels, probabilities = self.session.run(
            ["label", "probabilities"], {"input": np.array(rows, dtype=np.float32)}
        )
        assert job.result["labels"] == labels.tolist(), job.job_id
        returned = np.array(job.result["probabilities"], dtype=np.float32)
        assert returned.tobytes() == probabilities.tobytes(), job.job_id


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> Reference:
    return Reference(model_dir)


def job_rows(data: Rows, number: int) -> Rows:
    """Mostly one-row jobs, every third one with 2-5 rows, spread over the data set."""
    size = 1 if number % 3 else 2 + number % 4
    start = (number * 37) % (len(data) - size)
    return data[start : start + size]


# --- talking to the stack -------------------------------------------------------------------


class Submitter:
    """POSTs jobs from a few threads, each with its own keep-alive requests.Session."""

    def __init__(self, stack: Stack, threads: int = 8):
        self.stack = stack
        self.threads = threads
        self._local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session  # type: ignore[no-any-return]

    def post(self, rows: Rows) -> requests.Response:
        return self.session().post(self.stack.url(JOBS_PATH), json={"instances": rows}, timeout=15)

    def submit_all(self, jobs: list[Rows]) -> list[str]:
        """Submit every job, assert each was accepted (202), return the ids in order."""
        with ThreadPoolExecutor(self.threads) as pool:
            responses = list(pool.map(self.post, jobs))
        statuses = Counter(response.status_code for response in responses)
        assert statuses == {202: len(jobs)}, statuses
        return [response.json()["job_id"] for response in responses]


def redis_client(stack: Stack) -> redis.Redis:
    return redis.Redis.from_url(stack.redis.url, socket_timeout=5)


def records(client: redis.Redis, ids: list[str]) -> dict[str, Job | None]:
    """Every job record in one round trip (HTTP polling 1,000 jobs is slow)."""
    if not ids:
        return {}
    raws = client.mget([JobStore.prefix + job_id for job_id in ids])
    return {job_id: load_job(raw) if raw else None for job_id, raw in zip(ids, raws, strict=True)}


STATUS = re.compile(rb'^\{"job_id":"[0-9a-f]{32}","status":"([a-z]+)"')


def statuses(client: redis.Redis, ids: list[str]) -> dict[str, str]:
    """Each job's status, read without parsing the whole records (cheap enough to poll)."""
    found = {}
    for job_id, raw in zip(ids, client.mget([JobStore.prefix + i for i in ids]), strict=True):
        match = STATUS.match(raw) if raw else None
        if match:
            found[job_id] = match.group(1).decode()
        else:  # compressed (a large result) or gone
            found[job_id] = load_job(raw).status.value if raw else "missing"
    return found


def ended(client: redis.Redis, ids: list[str]) -> int:
    return sum(1 for status in statuses(client, ids).values() if JobStatus(status).ended)


def running_since(client: redis.Redis, ids: list[str], before: datetime) -> set[str]:
    """Jobs some process claimed before `before` and has not finished."""
    running = [job_id for job_id, status in statuses(client, ids).items() if status == "running"]
    return {
        job_id
        for job_id, job in records(client, running).items()
        if job and job.status is JobStatus.RUNNING and job.started_at and job.started_at < before
    }


def queued_messages(client: redis.Redis) -> int:
    """Messages waiting in the predict queue (kombu keeps one Redis list per priority step)."""
    names = [QUEUE] + [f"{QUEUE}{KOMBU_PRIORITY_SEP}{step}" for step in (3, 6, 9)]
    return sum(int(client.llen(name)) for name in names)


def queued_job_ids(client: redis.Redis) -> Counter[str]:
    """The job id of every message waiting in the predict queue (the task id is the job id)."""
    names = [QUEUE] + [f"{QUEUE}{KOMBU_PRIORITY_SEP}{step}" for step in (3, 6, 9)]
    return Counter(
        json.loads(raw)["headers"]["id"] for name in names for raw in client.lrange(name, 0, -1)
    )


def unacked_messages(client: redis.Redis) -> int:
    """Messages delivered to some consumer and not yet acknowledged."""
    return int(client.hlen("unacked"))


def unacked_job_ids(client: redis.Redis) -> Counter[str]:
    """The job id of every delivered, unacknowledged message."""
    return Counter(json.loads(raw)[0]["headers"]["id"] for raw in client.hvals("unacked"))


def wait_all_ended(client: redis.Redis, ids: list[str], timeout: float) -> dict[str, Job | None]:
    try:
        wait_until(lambda: ended(client, ids) == len(ids), timeout, f"all {len(ids)} jobs to end")
    except AssertionError as exc:
        waiting, held = queued_job_ids(client), unacked_job_ids(client)
        stragglers = {
            job_id: (job.status.value, job.attempts, waiting[job_id], held[job_id])
            for job_id, job in records(client, ids).items()
            if job is None or not job.status.ended
        }
        raise AssertionError(
            f"{exc}; (status, attempts, in queue, unacked): {stragglers}"
        ) from None
    return records(client, ids)


def job_events(worker: ServiceProcess) -> list[dict[str, Any]]:
    """The `job` events in the worker log (every worker of the stack: they share the file)."""
    return events(worker.output(), "job")


@contextmanager
def beat_running(stack: Stack, directory: Path) -> Iterator[ServiceProcess]:
    beat = start_beat(stack.env, directory)
    try:
        yield beat
    finally:
        beat.stop()


# --- killing with a look first ----------------------------------------------------------------


def freeze_child_mid_job(
    worker: ServiceProcess, client: redis.Redis, ids: list[str]
) -> tuple[int, set[str]]:
    """Freeze (SIGSTOP) one prefork child while it runs jobs; return its pid and those jobs.

    A child runs one batch of jobs at a time, claimed in one transaction. So once a job that
    was still queued after the freeze has ended, the other child has finished whatever it
    ran at the freeze, and the jobs claimed before the freeze and still `running` are the
    frozen child's. If there are none, the child was between jobs: it is thawed and tried
    again.
    """
    assert worker.process is not None
    children = psutil.Process(worker.process.pid).children()
    assert len(children) == WORKER_PROCESSES, children
    child = children[0].pid
    for _ in range(300):
        os.kill(child, signal.SIGSTOP)
        try:
            frozen_at = utc_now()
            queued = [
                job_id for job_id, status in statuses(client, ids).items() if status == "queued"
            ]
            assert queued, "every job was claimed before a child was caught in one"
            wait_until(
                lambda queued=queued: ended(client, queued) > 0,
                30,
                "the other child to run a job still queued after the freeze",
            )
            in_flight = running_since(client, ids, frozen_at)
        except BaseException:
            os.kill(child, signal.SIGCONT)
            raise
        if in_flight:
            return child, in_flight
        os.kill(child, signal.SIGCONT)
        assert ended(client, ids) < len(ids), "every job ended before a child was caught in one"
        time.sleep(random.uniform(0.001, 0.01))  # not in step with the worker's rhythm
    raise AssertionError("no worker child was ever caught running a job")


def kill_worker_mid_jobs(
    worker: ServiceProcess, client: redis.Redis, ids: list[str], stranded: set[str]
) -> tuple[set[str], int]:
    """SIGKILL the worker's whole process group while its children run jobs.

    Frozen first (SIGSTOP to the group), so what is `running` then, apart from the
    `stranded` jobs an earlier kill left behind, is exactly what the kill interrupts.
    Returns those jobs and how many messages the worker held unacknowledged.
    """
    assert worker.process is not None
    group = worker.process.pid  # started with start_new_session=True: it leads its group
    for _ in range(200):
        os.killpg(group, signal.SIGSTOP)
        try:
            time.sleep(0.05)
            in_flight = running_since(client, ids, utc_now()) - stranded
            held = unacked_messages(client)
        except BaseException:
            os.killpg(group, signal.SIGCONT)
            raise
        if in_flight:
            os.killpg(group, signal.SIGKILL)
            worker.process.wait(10)
            return in_flight, held
        os.killpg(group, signal.SIGCONT)
        assert ended(client, ids) < len(ids), "every job ended before the worker was caught"
        time.sleep(0.005)
    raise AssertionError("the worker was never caught running a job")


# --- the tests ------------------------------------------------------------------------------


def test_a_thousand_jobs_all_succeed_after_a_worker_child_and_then_the_whole_worker_are_killed(
    tmp_path: Path, model_dir: Path, redis_binary: str, data: Rows, reference: Reference
) -> None:
    # Beat runs as in production: its reconciler re-sends a job whose message the
    # killed worker took between BRPOP and recording it unacked (kombu's window).
    env = {**FAST_REDELIVERY, **FAST_RECONCILE, "ONNXQ_MICROBATCH_MAX_JOBS": "4"}
    jobs = [job_rows(data, number) for number in range(1000)]
    with (
        running_stack(tmp_path, model_dir, redis_binary, extra_env=env, with_worker=False) as stack,
        beat_running(stack, tmp_path),
    ):
        client = redis_client(stack)
        started = time.monotonic()
        ids = Submitter(stack).submit_all(jobs)
        submitted = time.monotonic() - started
        first = stack.start_worker()

        wait_until(lambda: ended(client, ids) >= 300, 30, "30% of the jobs to end")
        done_at_child_kill = ended(client, ids)
        child, child_victims = freeze_child_mid_job(first, client, ids)
        os.kill(child, signal.SIGKILL)
        wait_until(lambda: ended(client, ids) >= done_at_child_kill + 150, 30, "more jobs")
        done_at_worker_kill = ended(client, ids)
        worker_victims, held = kill_worker_mid_jobs(first, client, ids, child_victims)
        killed_at = time.monotonic()
        left = Counter(statuses(client, ids).values())
        assert left["queued"] > 0
        assert held > 0

        # Redis hands back what the dead worker held once VISIBILITY has passed.
        time.sleep(max(0.0, killed_at + VISIBILITY + 0.5 - time.monotonic()))
        second = stack.start_worker()
        final = wait_all_ended(client, ids, 60)
        for job_id, rows in zip(ids, jobs, strict=True):
            reference.check(final[job_id], rows)
        assert queued_messages(client) == 0
        wait_until(lambda: unacked_messages(client) == 0, 30, "every message acknowledged")

        # The interrupted jobs really were run again.
        assert all(final[job_id].attempts >= 2 for job_id in worker_victims)  # type: ignore[union-attr]
        assert max(final[job_id].attempts for job_id in child_victims) >= 2  # type: ignore[union-attr]

        # At least once: every row is in the prediction log, and a job run twice said
        # the same thing twice.
        lines = prediction_lines(stack.prediction_log_dir)
        by_row: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        for line in lines:
            by_row[(line["job_id"], line["row"])].append(line)
        expected_rows = {
            (job_id, row)
            for job_id, rows in zip(ids, jobs, strict=True)
            for row in range(len(rows))
        }
        assert set(by_row) == expected_rows
        duplicated = {key: group for key, group in by_row.items() if len(group) > 1}
        for (job_id, row), group in by_row.items():
            result = final[job_id].result  # type: ignore[union-attr]
            assert result is not None
            said = {
                (json.dumps(line["label"]), json.dumps(line["probabilities"])) for line in group
            }
            assert said == {
                (json.dumps(result["labels"][row]), json.dumps(result["probabilities"][row]))
            }
        attempts = Counter(job.attempts for job in final.values() if job)
        skipped = [e for e in job_events(second) if e["status"] == "skipped"]
        print(
            f"\nsubmitted in {submitted:.1f}s; child killed with {done_at_child_kill} ended, "
            f"{len(child_victims)} running in it; worker killed with {done_at_worker_kill} "
            f"ended, {len(worker_victims)} running, {held} messages held; attempts "
            f"{dict(attempts)}; duplicated log rows {len(duplicated)} "
            f"(jobs {len({job_id for job_id, _ in duplicated})}); skipped deliveries "
            f"{len(skipped)}; re-sent by the reconciler "
            f"{first.output().count('job_resent') + second.output().count('job_resent')}; "
            f"total {time.monotonic() - started:.1f}s"
        )


def test_jobs_queued_across_a_graceful_redis_restart_all_succeed_and_the_gateway_says_503_meanwhile(
    tmp_path: Path, model_dir: Path, redis_binary: str, data: Rows, reference: Reference
) -> None:
    jobs = [job_rows(data, number) for number in range(200)]
    with running_stack(
        tmp_path, model_dir, redis_binary, extra_env=FAST_REDELIVERY, with_worker=False
    ) as stack:
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
    env = {**FAST_REDELIVERY, "ONNXQ_MICROBATCH_MAX_JOBS": str(max_jobs)}
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
        first.process.send_signal(signal.SIGTERM)  # handled once the group runs again
        os.killpg(group, signal.SIGCONT)
        sigterm_at = time.monotonic()
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
    with running_stack(
        tmp_path, model_dir, redis_binary, extra_env=FAST_REDELIVERY, with_worker=False
    ) as stack:
        client = redis_client(stack)
        rows = [data[0:2], data[2:3], data[3:6]]
        poison, last_chance, normal = Submitter(stack).submit_all(rows)

        # As the records look after workers died running these jobs: 3 times, and twice.
        def lost(job_id: str, attempts: int) -> None:
            key = JobStore.prefix + job_id
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
    env = {**FAST_REDELIVERY, "ONNXQ_MICROBATCH_MAX_JOBS": str(max_jobs)}
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
    env = {**FAST_REDELIVERY, "ONNXQ_MICROBATCH_MAX_JOBS": "1"}
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

        final = wait_all_ended(client, ids, 20)
        for job_id, rows in zip(ids, jobs, strict=True):
            reference.check(final[job_id], rows)
        job = final[stuck]
        assert job is not None
        assert job.attempts == 2
