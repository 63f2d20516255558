from __future__ import annotations

import numpy as np
from flask.testing import FlaskClient

from gateway import create_app
from gateway.services import Services
from onnxq.jobs import keys
from onnxq.settings import Settings
from tests.support.jobs import take_messages
from worker.runner import JobRunner


def _submit(client: FlaskClient, name: str, rows: list[list[float]]):
    return client.post(f"/v1/models/{name}/jobs", json={"instances": rows})


def test_submit_answers_202_with_a_location_to_poll(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    response = _submit(client, demo_model_name, rows)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued"
    assert body["model"] == demo_model_name
    assert response.headers["Location"] == f"/v1/jobs/{body['job_id']}"
    assert response.headers["Retry-After"] == "1"


def test_a_submitted_job_polls_as_queued_until_a_worker_runs_it(
    client: FlaskClient, services: Services, demo_model_name: str, rows: list[list[float]]
) -> None:
    job_id = _submit(client, demo_model_name, rows).get_json()["job_id"]
    queued = client.get(f"/v1/jobs/{job_id}").get_json()
    assert queued["status"] == "queued"
    assert "result" not in queued

    # A worker takes the message off the queue and runs it.
    [message] = take_messages(services.queue.celery, services.settings.queue_name, job_id)
    JobRunner(services.repository, services.jobs, services.prediction_log).run([message])
    done = client.get(f"/v1/jobs/{job_id}").get_json()
    assert done["status"] == "succeeded"
    expected = services.repository.get(demo_model_name).predict(np.float32(rows))
    assert done["result"]["labels"] == expected.labels
    assert done["result"]["probabilities"] == expected.probabilities


def test_an_unknown_job_id_gets_404(client: FlaskClient) -> None:
    response = client.get("/v1/jobs/0123456789abcdef0123456789abcdef")
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "job_not_found"


def test_a_malformed_job_id_gets_404_not_500(client: FlaskClient) -> None:
    assert client.get("/v1/jobs/../../etc/passwd").status_code == 404
    assert client.get("/v1/jobs/not-a-job").status_code == 404


def test_invalid_input_creates_no_job(
    client: FlaskClient, services: Services, demo_model_name: str
) -> None:
    response = _submit(client, demo_model_name, [[1.0, 2.0]])
    assert response.status_code == 422
    assert services.redis.keys(keys.JOB_PREFIX + "*") == []


def test_submit_gets_503_and_leaves_no_job_when_redis_is_down(
    settings: Settings, demo_model_name: str, rows: list[list[float]]
) -> None:
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    response = _submit(client, demo_model_name, rows)
    assert response.status_code == 503
    assert response.get_json()["error"]["type"] == "queue_unavailable"
    poll = client.get("/v1/jobs/0123456789abcdef0123456789abcdef")
    assert poll.status_code == 503


def test_a_job_over_the_row_limit_gets_413_before_anything_is_queued(
    client: FlaskClient, services: Services, demo_model_name: str
) -> None:
    limit = services.settings.job_max_rows
    response = _submit(client, demo_model_name, [[0.5] * 30] * (limit + 1))
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["type"] == "too_many_rows"
    assert error["details"] == [{"limit": limit}]
    assert services.redis.keys(keys.JOB_PREFIX + "*") == []
