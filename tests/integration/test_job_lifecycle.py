"""Cancellation and completion callbacks through real redis-server, gunicorn and Celery."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from onnxq.devtools.processes import ServiceProcess
from onnxq.devtools.redis_server import free_port
from onnxq.devtools.waiting import wait_until
from tests.integration.conftest import Stack, running_stack
from tests.support.http_receiver import HttpReceiver
from tests.support.log_events import events as log_events
from tests.support.prediction_log import prediction_lines

pytestmark = pytest.mark.integration

JOBS_PATH = "/v1/models/breast-cancer/jobs"
ROWS = [[1.0] * 30, [20.0] * 30]
CALLBACK_ATTEMPTS = 4
CALLBACK_BACKOFF = 0.2


def events(process: ServiceProcess, name: str, job_id: str) -> list[dict[str, Any]]:
    """The JSON log events called `name` that a process wrote about `job_id`."""
    return log_events(process.output(), name, job_id=job_id)


def logged_job_ids(directory: Path) -> set[str | None]:
    return {line["job_id"] for line in prediction_lines(directory)}


def poll(base_url: str, job_id: str) -> requests.Response:
    return requests.get(f"{base_url}/v1/jobs/{job_id}", timeout=5)


def wait_for_status(base_url: str, job_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    wait_until(lambda: poll(base_url, job_id).json()["status"] == status, timeout, status)
    return poll(base_url, job_id).json()  # type: ignore[no-any-return]


def test_a_job_cancelled_while_queued_is_skipped_by_the_worker_that_receives_it(
    tmp_path: Path, model_dir: Path, redis_binary: str
) -> None:
    with running_stack(tmp_path, model_dir, redis_binary, with_worker=False) as stack:
        base = stack.base_url
        # No worker yet: both jobs wait in the queue.
        cancelled = requests.post(base + JOBS_PATH, json={"instances": ROWS}, timeout=5)
        kept = requests.post(base + JOBS_PATH, json={"instances": ROWS}, timeout=5)
        assert cancelled.status_code == kept.status_code == 202
        cancelled_id, kept_id = cancelled.json()["job_id"], kept.json()["job_id"]

        deleted = requests.delete(f"{base}/v1/jobs/{cancelled_id}", timeout=5)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["status"] == "cancelled"
        cancelled_at = deleted.json()["finished_at"]

        worker = stack.start_worker()
        wait_until(
            lambda: bool(events(worker, "job", cancelled_id)),
            30,
            "the worker to consume the cancelled job's message",
        )
        # The job queued behind it runs: the worker and the prediction log work.
        wait_for_status(base, kept_id, "succeeded")

        [skipped] = events(worker, "job", cancelled_id)
        assert skipped["status"] == "skipped"
        assert skipped["job_status"] == "cancelled"
        job = poll(base, cancelled_id)
        assert job.status_code == 200
        assert job.json()["status"] == "cancelled"
        assert job.json()["finished_at"] == cancelled_at
        assert "started_at" not in job.json()
        assert "result" not in job.json()
        logged = logged_job_ids(stack.prediction_log_dir)
        assert kept_id in logged
        assert cancelled_id not in logged


@pytest.fixture(scope="module")
def callback_stack(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, redis_binary: str
) -> Iterator[Stack]:
    """A whole stack whose worker retries callbacks quickly: 4 attempts, 0.2 s doubling."""
    retries_fast = {
        "ONNXQ_CALLBACK_BACKOFF_SECONDS": str(CALLBACK_BACKOFF),
        "ONNXQ_CALLBACK_MAX_ATTEMPTS": str(CALLBACK_ATTEMPTS),
        "ONNXQ_CALLBACK_TIMEOUT_SECONDS": "2",
    }
    directory = tmp_path_factory.mktemp("callback-stack")
    with running_stack(directory, model_dir, redis_binary, extra_env=retries_fast) as stack:
        yield stack


def test_a_callback_that_fails_twice_is_retried_with_backoff_until_delivered(
    callback_stack: Stack,
) -> None:
    with HttpReceiver([500, 500, 200]) as receiver:
        response = requests.post(
            callback_stack.url(JOBS_PATH),
            json={"instances": ROWS, "callback_url": receiver.url},
            timeout=5,
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        wait_until(lambda: len(receiver.posts) >= 3, 15, "three callback POSTs")
        # A fourth POST after the 200 would be a bug. The worker logs each attempt once its
        # POST has been answered and retries only an attempt it logged as `retry`: so once the
        # third attempt is logged, the events below say whether a fourth POST will come.
        worker = callback_stack.worker
        wait_until(
            lambda: len(events(worker, "callback", job_id)) >= 3, 15, "three callback events"
        )
        posts = receiver.posts

    assert len(posts) == 3
    polled = poll(callback_stack.base_url, job_id).json()
    documents = [post.json() for post in posts]
    assert all(document == polled for document in documents)
    assert documents[-1]["status"] == "succeeded"
    assert documents[-1]["result"] == polled["result"]
    assert len(polled["result"]["labels"]) == len(ROWS)
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(posts)]
    assert gaps[0] >= CALLBACK_BACKOFF * 0.9, gaps
    assert gaps[1] >= CALLBACK_BACKOFF * 2 * 0.9, gaps

    logged = events(worker, "callback", job_id)
    assert [(e["status"], e["attempt"]) for e in logged] == [
        ("retry", 1),
        ("retry", 2),
        ("delivered", 3),
    ]


def test_a_callback_url_that_never_answers_leaves_the_job_succeeded_and_is_given_up(
    callback_stack: Stack,
) -> None:
    refused = f"http://127.0.0.1:{free_port()}/hook"
    response = requests.post(
        callback_stack.url(JOBS_PATH),
        json={"instances": ROWS, "callback_url": refused},
        timeout=5,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    worker = callback_stack.worker

    def gave_up() -> bool:
        return any(e["status"] == "failed" for e in events(worker, "callback", job_id))

    wait_until(gave_up, 15, "the worker to give up on the callback")

    logged = events(worker, "callback", job_id)
    assert [(e["status"], e["attempt"]) for e in logged] == [
        *(("retry", attempt) for attempt in range(1, CALLBACK_ATTEMPTS)),
        ("failed", CALLBACK_ATTEMPTS),
    ]
    assert logged[-1]["max_attempts"] == CALLBACK_ATTEMPTS
    assert logged[-1]["level"] == "error"
    job = poll(callback_stack.base_url, job_id)
    assert job.status_code == 200
    assert job.json()["status"] == "succeeded"
    assert len(job.json()["result"]["labels"]) == len(ROWS)
    assert "error" not in job.json()
