"""Waiting polls: `GET /v1/jobs/<id>?wait=`, and `Prefer: wait=` on the poll and on the submit.

A worker thread here runs the job only once the request is provably waiting (the waiter has it
registered), so each test waits on that event, never on the clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from gateway.services import Services
from onnxq.devtools.waiting import wait_until
from tests.support.apps import invalid_input_fields
from tests.support.jobs import take_messages
from worker.runner import JobRunner


@pytest.fixture
def subscribed(services: Services) -> Services:
    assert services.waiter.wait_subscribed(10), "the waiter never subscribed"
    return services


def run_job_once_waited_for(services: Services, job_id: str) -> threading.Thread:
    """A worker that runs `job_id` as soon as some request is waiting for it."""

    def work() -> None:
        wait_until(lambda: services.waiter.waiting() >= 1, 10, "a request to wait")
        [message] = take_messages(services.queue.celery, services.settings.queue_name, job_id)
        JobRunner(services.repository, services.jobs, services.prediction_log).run([message])

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def job_id(client: FlaskClient, demo_model_name: str, rows: list[list[float]]) -> Iterator[str]:
    response = client.post(f"/v1/models/{demo_model_name}/jobs", json={"instances": rows})
    assert response.status_code == 202
    yield response.get_json()["job_id"]


def test_a_waiting_poll_answers_when_the_job_ends_with_its_result(
    client: FlaskClient, subscribed: Services, job_id: str
) -> None:
    worker = run_job_once_waited_for(subscribed, job_id)
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job_id}?wait=30")
    worker.join(10)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "succeeded"
    assert len(body["result"]["labels"]) == 3
    assert "Retry-After" not in response.headers
    # Woken by the job's end, not by the 30 s deadline.
    assert time.monotonic() - started < 25


def test_a_waiting_poll_answers_at_the_deadline_with_the_current_state(
    client: FlaskClient, subscribed: Services, job_id: str
) -> None:
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job_id}?wait=0.3")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert response.get_json()["status"] == "queued"
    assert response.headers["Retry-After"] == "1"
    assert subscribed.waiter.waiting() == 0  # nothing left registered


@pytest.mark.parametrize("wait", ["31", "-1", "abc", "nan", "inf"])
def test_a_wait_out_of_range_is_a_422_naming_the_parameter(
    client: FlaskClient, job_id: str, wait: str
) -> None:
    assert invalid_input_fields(client.get(f"/v1/jobs/{job_id}?wait={wait}"))[0] == "wait"


def test_prefer_wait_on_the_poll_waits_too(
    client: FlaskClient, subscribed: Services, job_id: str
) -> None:
    worker = run_job_once_waited_for(subscribed, job_id)
    response = client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=30"})
    worker.join(10)
    assert response.get_json()["status"] == "succeeded"
    assert response.headers["Preference-Applied"] == "wait=30"


def test_prefer_wait_on_the_submit_answers_200_with_the_outcome(
    client: FlaskClient, subscribed: Services, demo_model_name: str, rows: list[list[float]]
) -> None:
    # The submit is the request that waits, so the worker has to find its job by itself.
    def work() -> None:
        wait_until(lambda: subscribed.waiter.waiting() >= 1, 10, "the submit to wait")
        # kombu's in-memory broker is per process: earlier tests' messages may wait there too;
        # their records are in other fake Redis servers, so the runner drops them.
        messages = take_messages(subscribed.queue.celery, subscribed.settings.queue_name)
        JobRunner(subscribed.repository, subscribed.jobs, subscribed.prediction_log).run(messages)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    response = client.post(
        f"/v1/models/{demo_model_name}/jobs",
        json={"instances": rows},
        headers={"Prefer": "respond-async, wait=120"},  # capped at 30
    )
    worker.join(10)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "succeeded"
    assert response.headers["Location"] == f"/v1/jobs/{body['job_id']}"
    assert response.headers["Preference-Applied"] == "wait=30"


def test_an_unreadable_prefer_is_ignored_as_rfc_7240_says(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    response = client.post(
        f"/v1/models/{demo_model_name}/jobs",
        json={"instances": rows},
        headers={"Prefer": "wait=soon"},
    )
    assert response.status_code == 202
    assert "Preference-Applied" not in response.headers
