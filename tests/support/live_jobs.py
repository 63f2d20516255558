"""A live stack's jobs, for the fault tests: submit them, read them in Redis, catch workers mid-job.

Reading job records straight from Redis (one MGET) is what lets a test watch thousands of jobs; HTTP
polling that many is slow.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import threading
import time
from collections import Counter
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
from onnxq.devtools.waiting import wait_until
from onnxq.jobs import keys
from onnxq.jobs.record import Job, JobStatus, load_job
from onnxq.models.manifest import MODEL_FILE
from onnxq.registry.demo import DEMO_MODEL_NAME
from tests.integration.conftest import Stack
from tests.support.log_events import events

JOBS_PATH = f"/v1/models/{DEMO_MODEL_NAME}/jobs"
QUEUE = "onnxq.predict"  # Settings.queue_name
KOMBU_PRIORITY_SEP = "\x06\x16"
WORKER_PROCESSES = 2  # ONNXQ_WORKER_CONCURRENCY in the integration stack

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
    raws = client.mget([keys.job(job_id) for job_id in ids])
    return {job_id: load_job(raw) if raw else None for job_id, raw in zip(ids, raws, strict=True)}


ENDED = frozenset(status.value for status in JobStatus if status.ended)
STATUS = re.compile(rb'^\{"job_id":"[0-9a-f]{32}","status":"([a-z]+)"')


def statuses(client: redis.Redis, ids: list[str]) -> dict[str, str]:
    """Each job's status, read without parsing the whole records (cheap enough to poll)."""
    found = {}
    for job_id, raw in zip(ids, client.mget([keys.job(i) for i in ids]), strict=True):
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
    return int(client.hlen(keys.KOMBU_UNACKED))


def unacked_job_ids(client: redis.Redis) -> Counter[str]:
    """The job id of every delivered, unacknowledged message."""
    return Counter(json.loads(raw)[0]["headers"]["id"] for raw in client.hvals(keys.KOMBU_UNACKED))


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

    Every claim records the claiming process (`Job.worker`, "<host>:<pid>"). The whole worker is
    frozen for a look; if one of its children has jobs `running`, that child stays frozen and
    everything else is thawed, else all are thawed and it looks again.
    """
    assert worker.process is not None
    main = worker.process.pid
    host = socket.gethostname()
    # Looked for until it happens or every job has ended, not a fixed number of tries. What is
    # read happens while the worker is frozen, so the worker only runs during the short sleeps:
    # big micro-batches on a loaded machine must not race through the jobs between two looks.
    pending = list(ids)
    while pending:
        children = [child.pid for child in psutil.Process(main).children()]
        os.killpg(main, signal.SIGSTOP)
        try:
            now = statuses(client, pending)
            pending = [job_id for job_id, status in now.items() if status not in ENDED]
            running = [job_id for job_id in pending if now[job_id] == "running"]
            holders: dict[int, set[str]] = {}
            for job_id, job in records(client, running).items():
                if job and job.status is JobStatus.RUNNING and job.worker:
                    job_host, _, pid = job.worker.rpartition(":")
                    if job_host == host and int(pid) in children:
                        holders.setdefault(int(pid), set()).add(job_id)
        except BaseException:
            os.killpg(main, signal.SIGCONT)
            raise
        if holders:
            child = max(holders, key=lambda pid: len(holders[pid]))
            for pid in [main, *children]:
                if pid != child:
                    os.kill(pid, signal.SIGCONT)
            return child, holders[child]
        os.killpg(main, signal.SIGCONT)
        time.sleep(random.uniform(0.001, 0.01))  # not in step with the worker's rhythm
    raise AssertionError("every job ended before a child was caught in one")
