"""Polling several jobs at once: `GET /v1/jobs?ids=<id>,<id>...`, with `?wait=` or `Prefer: wait`.

As in test_waiting_polls.py, a worker thread runs jobs only once the request is provably waiting.
"""

from __future__ import annotations

import threading

import pytest
from flask.testing import FlaskClient

from gateway.jobs import MAX_IDS_PER_POLL
from gateway.services import Services
from onnxq.devtools.waiting import wait_until
from tests.support.apps import invalid_input_fields
from tests.support.jobs import take_messages
from worker.runner import JobRunner

UNKNOWN = "f" * 32


@pytest.fixture
def subscribed(services: Services) -> Services:
    assert services.waiter.wait_subscribed(10), "the waiter never subscribed"
    return services


@pytest.fixture
def job_ids(client: FlaskClient, demo_model_name: str, rows: list[list[float]]) -> list[str]:
    out = []
    for row in rows:
        response = client.post(f"/v1/models/{demo_model_name}/jobs", json={"instances": [row]})
        assert response.status_code == 202
        out.append(response.get_json()["job_id"])
    return out


def run(services: Services, job_ids: list[str]) -> None:
    queue = services.settings.queue_name
    messages = [m for i in job_ids for m in take_messages(services.queue.celery, queue, i)]
    JobRunner(services.repository, services.jobs, services.prediction_log).run(messages)


def test_several_jobs_come_back_in_the_order_asked_with_the_unknown_ids_listed(
    client: FlaskClient, services: Services, job_ids: list[str]
) -> None:
    run(services, job_ids[:2])
    asked = [job_ids[2], UNKNOWN, job_ids[0], job_ids[1], job_ids[0]]  # one twice

    response = client.get(f"/v1/jobs?ids={','.join(asked)}")

    assert response.status_code == 200
    body = response.get_json()
    assert [job["job_id"] for job in body["jobs"]] == [job_ids[2], job_ids[0], job_ids[1]]
    assert [job["status"] for job in body["jobs"]] == ["queued", "succeeded", "succeeded"]
    assert len(body["jobs"][1]["result"]["labels"]) == 1
    assert body["missing"] == [UNKNOWN]
    assert response.headers["Retry-After"] == "1"  # one of them has not ended


def test_the_ids_may_come_as_a_repeated_parameter(
    client: FlaskClient, services: Services, job_ids: list[str]
) -> None:
    run(services, job_ids)
    response = client.get("/v1/jobs?" + "&".join(f"ids={i}" for i in job_ids))
    assert [job["job_id"] for job in response.get_json()["jobs"]] == job_ids
    assert "Retry-After" not in response.headers


def test_a_waiting_poll_of_several_jobs_answers_once_all_have_ended(
    client: FlaskClient, subscribed: Services, job_ids: list[str]
) -> None:
    def work() -> None:
        wait_until(lambda: subscribed.waiter.waiting() >= 1, 10, "the poll to wait")
        for job_id in job_ids:  # one by one: the first end must not answer the poll
            run(subscribed, [job_id])

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    response = client.get(f"/v1/jobs?ids={','.join(job_ids)}", headers={"Prefer": "wait=30"})
    worker.join(10)

    assert [job["status"] for job in response.get_json()["jobs"]] == ["succeeded"] * 3
    assert response.headers["Preference-Applied"] == "wait=30"
    assert "Retry-After" not in response.headers
    assert subscribed.waiter.waiting() == 0


def test_a_waiting_poll_of_several_jobs_answers_at_the_deadline(
    client: FlaskClient, subscribed: Services, job_ids: list[str]
) -> None:
    run(subscribed, job_ids[:1])
    response = client.get(f"/v1/jobs?ids={','.join(job_ids)}&wait=0.2")
    statuses = [job["status"] for job in response.get_json()["jobs"]]
    assert statuses == ["succeeded", "queued", "queued"]
    assert response.headers["Retry-After"] == "1"
    assert subscribed.waiter.waiting() == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "ids"),
        ("?ids=", "ids"),
        ("?ids=" + ",".join(f"{i:032x}" for i in range(MAX_IDS_PER_POLL + 1)), "ids"),
        (f"?ids={UNKNOWN},not-a-job", "ids[1]"),
        (f"?ids={UNKNOWN}&wait=31", "wait"),
    ],
)
def test_a_poll_of_several_jobs_asked_wrongly_is_a_422_naming_the_parameter(
    client: FlaskClient, query: str, field: str
) -> None:
    assert invalid_input_fields(client.get(f"/v1/jobs{query}")) == [field]


def test_the_most_ids_a_poll_takes_fit_in_one_request_line(client: FlaskClient) -> None:
    ids = ",".join(f"{i:032x}" for i in range(MAX_IDS_PER_POLL))
    request_line = f"GET /v1/jobs?ids={ids}&wait=30 HTTP/1.1"
    assert len(request_line) <= 4094  # gunicorn's limit_request_line
    assert len(client.get(f"/v1/jobs?ids={ids}").get_json()["missing"]) == MAX_IDS_PER_POLL
