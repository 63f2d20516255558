"""Waiting polls on the real gateway (gunicorn, gevent workers), worker and Redis.

500 clients wait on jobs at once: `/health` stays fast, predicts keep working, and every waiter
answers as soon as its job ends, woken by Redis pub/sub.
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from onnxq.devtools.metrics_text import sample
from onnxq.devtools.waiting import wait_until
from onnxq.registry.demo import DEMO_MODEL_NAME
from tests.integration.conftest import running_stack

pytestmark = pytest.mark.integration

WAITERS = 500
JOBS = 50  # each waited on by WAITERS / JOBS clients
ROW = [17.99, 10.38, 122.8, 1001, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871] * 3


def test_500_waiting_polls_leave_health_fast_and_answer_when_their_jobs_end(
    tmp_path: Path, model_dir: Path, redis_binary: str
) -> None:
    with running_stack(tmp_path, model_dir, redis_binary, with_worker=False) as stack:
        ids = submitted(stack, JOBS)
        answers: list[tuple[str, int, str, datetime]] = []
        started = threading.Barrier(WAITERS + 1)

        def wait(number: int) -> None:
            job_id = ids[number % JOBS]
            started.wait()
            response = requests.get(stack.url(f"/v1/jobs/{job_id}?wait=30"), timeout=60)
            answers.append(
                (job_id, response.status_code, response.json()["status"], datetime.now(UTC))
            )

        threads = [threading.Thread(target=wait, args=(n,)) for n in range(WAITERS)]
        for thread in threads:
            thread.start()
        started.wait()
        # Every waiter is connected and waiting: the gateway's own gauge says so.
        wait_until(lambda: waiters(stack) == WAITERS, 60, f"{WAITERS} waiting requests")

        health = []
        with requests.Session() as session:
            for _ in range(20):
                began = time.perf_counter()
                assert session.get(stack.url("/health"), timeout=5).status_code == 200
                health.append(time.perf_counter() - began)
            predict = session.post(
                stack.url(f"/v1/models/{DEMO_MODEL_NAME}/predict"),
                json={"instances": [ROW]},
                timeout=5,
            )
        assert predict.status_code == 200
        assert max(health) < 0.05, f"/health took up to {max(health) * 1000:.1f} ms"
        assert answers == [], "a waiting poll answered before its job ran"

        stack.start_worker()
        for thread in threads:
            thread.join(60)
        assert len(answers) == WAITERS
        assert {(status, state) for _, status, state, _ in answers} == {(200, "succeeded")}
        finished = {job_id: stack.ended_job(job_id)["finished_at"] for job_id in ids}
        delays = [
            (at - datetime.fromisoformat(finished[job_id])).total_seconds()
            for job_id, _, _, at in answers
        ]
        print(
            f"\n/health max {max(health) * 1000:.1f} ms with {WAITERS} waiting; "
            f"finished_at -> answer median {statistics.median(delays) * 1000:.1f} ms, "
            f"max {max(delays) * 1000:.1f} ms"
        )
        # Woken by the end of the job, not by the 30 s deadline.
        assert max(delays) < 10


def submitted(stack, n: int) -> list[str]:
    """The ids of `n` single-row jobs submitted one after the other."""
    jobs_url = stack.url(f"/v1/models/{DEMO_MODEL_NAME}/jobs")
    with requests.Session() as session:
        return [
            session.post(jobs_url, json={"instances": [ROW]}, timeout=10).json()["job_id"]
            for _ in range(n)
        ]


def waiters(stack) -> float:
    """onnxq_held_polls summed over the gateway's processes, as a scrape reads it."""
    text = requests.get(stack.url("/metrics"), timeout=5).text
    return sample(text, "onnxq_held_polls")


def test_one_waiting_poll_of_many_jobs_answers_once_the_worker_has_ended_them_all(
    tmp_path: Path, model_dir: Path, redis_binary: str
) -> None:
    with running_stack(tmp_path, model_dir, redis_binary, with_worker=False) as stack:
        ids = submitted(stack, JOBS)
        unknown = "0" * 32
        answer: list[requests.Response] = []
        poll = threading.Thread(
            target=lambda: answer.append(
                requests.get(
                    stack.url(f"/v1/jobs?ids={','.join([*ids, unknown])}"),
                    headers={"Prefer": "wait=30"},
                    timeout=60,
                )
            )
        )
        poll.start()
        wait_until(lambda: waiters(stack) == 1, 30, "the poll to wait")  # one, for all the jobs
        assert answer == [], "the poll answered before any job ran"

        stack.start_worker()
        poll.join(60)

        [response] = answer
        assert response.status_code == 200
        body = response.json()
        assert [job["job_id"] for job in body["jobs"]] == ids
        assert {job["status"] for job in body["jobs"]} == {"succeeded"}
        assert body["missing"] == [unknown]
        assert response.headers["Preference-Applied"] == "wait=30"
