"""A job's life through the gateway: cancel, expiry, idempotent submits, pinned versions,
named records, and the model catalogue. A worker is played by JobRunner, fed the messages the
gateway queued as a worker takes them off the queue (tests/support/jobs.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from kombu.exceptions import OperationalError
from kombu.transport.memory import Channel
from sklearn.datasets import load_breast_cancer
from werkzeug.test import TestResponse

from gateway.inputs import body_fingerprint
from gateway.services import Services
from onnxq.broker.celery_app import CALLBACK_TASK, PREDICT_TASK
from onnxq.errors import OnnxqError
from onnxq.jobs import keys
from onnxq.jobs.record import Job, JobStatus
from onnxq.models.inputs import rows_to_matrix
from onnxq.settings import Settings
from tests.support.jobs import private_queue_name, take_messages
from tests.support.prediction_log import prediction_lines
from worker.runner import JobRunner

MODEL = "breast-cancer"
JOBS_URL = f"/v1/models/{MODEL}/jobs"
PREDICT_URL = f"/v1/models/{MODEL}/predict"
UNSEEN_JOB_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This test's own predict queue, so that run_job finds only its messages."""
    return settings.model_copy(update={"queue_name": private_queue_name()})


@pytest.fixture(scope="module")
def dataset_rows() -> list[list[float]]:
    """Real rows (both classes), with the data set's own decimals."""
    data = load_breast_cancer()
    picked = [*np.flatnonzero(data.target == 0)[:3], *np.flatnonzero(data.target == 1)[:3]]
    return data.data[picked].tolist()


@pytest.fixture
def feature_names(services: Services) -> list[str]:
    return services.repository.manifest(MODEL).feature_names


def named(row: list[float], names: list[str]) -> dict[str, float]:
    return dict(zip(names, row, strict=True))


def submit(
    client: FlaskClient, body: dict[str, Any], key: str | None = None, **headers: str
) -> TestResponse:
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(JOBS_URL, json=body, headers=headers)


def run_job(services: Services, job_id: str, **kwargs: Any) -> Job | None:
    """Do what a worker does with the job's message: take it off the queue, run it, ack it."""
    [message] = take_messages(services.queue.celery, services.settings.queue_name, job_id)
    runner = JobRunner(services.repository, services.jobs, services.prediction_log, **kwargs)
    return runner.run([message])[job_id]


def while_running(services: Services, monkeypatch: pytest.MonkeyPatch, during: Any) -> None:
    """Call `during()` while the worker has the job running: inside the model's predict."""
    model = services.repository.get(MODEL)
    predict = model.predict

    def predict_meanwhile(matrix: Any) -> Any:
        during()
        return predict(matrix)

    monkeypatch.setattr(model, "predict", predict_meanwhile)


def job_keys(services: Services) -> list[bytes]:
    return services.redis.keys(keys.JOB_PREFIX + "*")


def broker_messages(task: str) -> Iterator[dict[str, Any]]:
    """Keyword arguments of every `task` message waiting in the in-memory broker.

    The memory transport's queues are shared by the whole test process: filter by job id.
    """
    for queue in list(Channel.queues.values()):
        for message in list(queue.queue):
            if message["headers"]["task"] == task:
                _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
                yield kwargs


def predict_messages(job_id: str) -> list[dict[str, Any]]:
    return [kwargs for kwargs in broker_messages(PREDICT_TASK) if kwargs["job_id"] == job_id]


def error_of(response: TestResponse) -> dict[str, Any]:
    return response.get_json()["error"]  # type: ignore[no-any-return]


# Cancellation


def test_deleting_a_queued_job_cancels_it_with_a_finish_time(
    client: FlaskClient, rows: list[list[float]]
) -> None:
    job_id = submit(client, {"instances": rows}).get_json()["job_id"]

    response = client.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 200
    body = response.get_json()
    assert body["job_id"] == job_id
    assert body["status"] == "cancelled"
    assert body["finished_at"] >= body["submitted_at"]
    assert "result" not in body
    polled = client.get(f"/v1/jobs/{job_id}")
    assert polled.get_json()["status"] == "cancelled"
    assert polled.get_json()["finished_at"] == body["finished_at"]


def test_a_cancelled_job_is_skipped_by_the_worker_without_running_the_model(
    client: FlaskClient,
    services: Services,
    rows: list[list[float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = submit(client, {"instances": rows}).get_json()["job_id"]
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
    predicted: list[Any] = []
    model = services.repository.get(MODEL)
    monkeypatch.setattr(model, "predict", lambda matrix: predicted.append(matrix))
    ended: list[Job] = []

    returned = run_job(services, job_id, on_end=ended.append)

    assert returned is not None
    assert returned.status is JobStatus.CANCELLED
    assert predicted == []
    assert ended == []
    assert prediction_lines(services.settings.prediction_log_dir) == []
    assert client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "cancelled"


def test_cancelling_a_running_job_gets_409_naming_its_status(
    client: FlaskClient,
    services: Services,
    rows: list[list[float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = submit(client, {"instances": rows}).get_json()["job_id"]
    seen: list[tuple[TestResponse, JobStatus]] = []
    cancel = partial(client.delete, f"/v1/jobs/{job_id}")
    while_running(
        services, monkeypatch, lambda: seen.append((cancel(), services.jobs.get(job_id).status))
    )

    finished = run_job(services, job_id)

    [(response, status_after)] = seen
    assert response.status_code == 409
    error = error_of(response)
    assert error["type"] == "job_conflict"
    assert error["details"] == [{"job_id": job_id, "status": "running"}]
    assert status_after is JobStatus.RUNNING
    assert finished is not None and finished.status is JobStatus.SUCCEEDED


def test_cancelling_a_succeeded_job_gets_409_and_keeps_its_result(
    client: FlaskClient, services: Services, rows: list[list[float]]
) -> None:
    job_id = submit(client, {"instances": rows}).get_json()["job_id"]
    run_job(services, job_id)
    before = client.get(f"/v1/jobs/{job_id}").get_json()

    response = client.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 409
    assert error_of(response)["type"] == "job_conflict"
    assert error_of(response)["details"][0]["status"] == "succeeded"
    assert client.get(f"/v1/jobs/{job_id}").get_json() == before


def test_cancelling_a_cancelled_job_again_gets_409(
    client: FlaskClient, rows: list[list[float]]
) -> None:
    job_id = submit(client, {"instances": rows}).get_json()["job_id"]
    client.delete(f"/v1/jobs/{job_id}")

    response = client.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 409
    assert error_of(response)["details"][0]["status"] == "cancelled"


@pytest.mark.parametrize("job_id", [UNSEEN_JOB_ID, "not-a-job-id"])
def test_cancelling_an_unknown_job_gets_404(client: FlaskClient, job_id: str) -> None:
    response = client.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 404
    assert error_of(response)["type"] == "job_not_found"


def test_cancelling_a_job_with_a_callback_url_queues_its_callback(
    client: FlaskClient, rows: list[list[float]]
) -> None:
    body = {"instances": rows, "callback_url": "http://hooks.example/hook"}
    job_id = submit(client, body).get_json()["job_id"]

    client.delete(f"/v1/jobs/{job_id}")

    assert [kwargs for kwargs in broker_messages(CALLBACK_TASK) if kwargs["job_id"] == job_id] == [
        {"job_id": job_id}
    ]


# Expiry


def test_a_job_whose_record_expired_gets_404_job_expired(
    client: FlaskClient, services: Services, rows: list[list[float]]
) -> None:
    job_id = submit(client, {"instances": rows}).get_json()["job_id"]
    services.redis.delete(keys.job(job_id))  # what the TTL does; the tombstone outlives it

    response = client.get(f"/v1/jobs/{job_id}")

    assert response.status_code == 404
    error = error_of(response)
    assert error["type"] == "job_expired"
    assert "expired" in error["message"]
    assert job_id in error["message"]


def test_cancelling_an_expired_job_says_it_expired_as_polling_does(
    client: FlaskClient, services: Services, rows: list[list[float]]
) -> None:
    job_id = submit(client, {"instances": rows}).get_json()["job_id"]
    services.redis.delete(keys.job(job_id))

    response = client.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 404
    assert error_of(response)["type"] == "job_expired"


def test_a_job_id_never_seen_gets_404_job_not_found(client: FlaskClient) -> None:
    response = client.get(f"/v1/jobs/{UNSEEN_JOB_ID}")

    assert response.status_code == 404
    assert error_of(response)["type"] == "job_not_found"
    assert "expired" not in error_of(response)["message"]


# Idempotency-Key


def test_the_same_key_and_body_replay_the_queued_job_without_queueing_it_twice(
    client: FlaskClient, services: Services, rows: list[list[float]]
) -> None:
    first = submit(client, {"instances": rows}, key="order-42")
    second = submit(client, {"instances": rows}, key="order-42")

    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    job_id = first.get_json()["job_id"]
    assert second.status_code == 202
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json()["job_id"] == job_id
    assert second.get_json()["status"] == "queued"
    assert second.headers["Location"] == first.headers["Location"] == f"/v1/jobs/{job_id}"
    assert second.headers["Retry-After"] == "1"
    assert job_keys(services) == [keys.job(job_id).encode()]
    assert len(predict_messages(job_id)) == 1


def test_a_replay_after_the_job_succeeded_answers_200_with_its_result(
    client: FlaskClient, services: Services, rows: list[list[float]]
) -> None:
    job_id = submit(client, {"instances": rows}, key="order-43").get_json()["job_id"]
    run_job(services, job_id)  # takes the one message the submit queued

    replay = submit(client, {"instances": rows}, key="order-43")

    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Retry-After" not in replay.headers
    body = replay.get_json()
    assert body == client.get(f"/v1/jobs/{job_id}").get_json()
    assert body["status"] == "succeeded"
    assert len(body["result"]["labels"]) == len(rows)
    assert len(job_keys(services)) == 1
    assert predict_messages(job_id) == []  # the replay queued nothing


def test_the_same_key_with_a_different_body_gets_409_idempotency_conflict(
    client: FlaskClient, services: Services, rows: list[list[float]]
) -> None:
    job_id = submit(client, {"instances": rows}, key="order-44").get_json()["job_id"]

    response = submit(client, {"instances": rows[:1]}, key="order-44")

    assert response.status_code == 409
    assert error_of(response)["type"] == "idempotency_conflict"
    assert job_keys(services) == [keys.job(job_id).encode()]


def test_different_keys_create_different_jobs(
    client: FlaskClient, services: Services, rows: list[list[float]]
) -> None:
    first = submit(client, {"instances": rows}, key="order-45")
    second = submit(client, {"instances": rows}, key="order-46")

    assert first.status_code == second.status_code == 202
    assert "Idempotent-Replayed" not in second.headers
    assert first.get_json()["job_id"] != second.get_json()["job_id"]
    assert len(job_keys(services)) == 2


def test_submits_without_a_key_are_never_merged(
    client: FlaskClient, services: Services, rows: list[list[float]]
) -> None:
    first = submit(client, {"instances": rows})
    second = submit(client, {"instances": rows})

    assert first.get_json()["job_id"] != second.get_json()["job_id"]
    assert len(job_keys(services)) == 2


@pytest.mark.parametrize(
    "key", ["k" * 300, "has space", "tab\there"], ids=["300-chars", "space", "tab"]
)
def test_an_invalid_idempotency_key_gets_400_and_queues_nothing(
    client: FlaskClient, services: Services, rows: list[list[float]], key: str
) -> None:
    response = submit(client, {"instances": rows}, key=key)

    assert response.status_code == 400
    assert "Idempotency-Key" in error_of(response)["message"]
    assert job_keys(services) == []


def test_a_255_character_key_is_accepted(client: FlaskClient, rows: list[list[float]]) -> None:
    assert submit(client, {"instances": rows}, key="k" * 255).status_code == 202


def test_when_enqueueing_fails_the_client_gets_503_and_a_retry_with_the_key_queues_a_new_job(
    client: FlaskClient,
    services: Services,
    rows: list[list[float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to the broker. Connection refused.")

    with monkeypatch.context() as patch:
        patch.setattr(services.queue.celery, "send_task", broker_down)
        refused = submit(client, {"instances": rows}, key="order-47")

    assert refused.status_code == 503
    assert error_of(refused)["type"] == "queue_unavailable"
    assert job_keys(services) == []
    assert services.redis.keys(keys.TOMBSTONE_PREFIX + "*") == []

    retried = submit(client, {"instances": rows}, key="order-47")

    assert retried.status_code == 202
    assert "Idempotent-Replayed" not in retried.headers
    job_id = retried.get_json()["job_id"]
    assert retried.get_json()["status"] == "queued"
    assert job_keys(services) == [keys.job(job_id).encode()]
    assert len(predict_messages(job_id)) == 1


def test_a_concurrent_submit_with_the_same_key_does_not_queue_a_second_job(
    client: FlaskClient,
    services: Services,
    rows: list[list[float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client retrying while its first submit is between claiming the key and writing
    the job record must not get a second job: preventing that is what the key is for."""
    create = services.jobs.create
    fingerprint = body_fingerprint(MODEL, {"instances": rows})
    retry: dict[str, str] = {}

    def create_after_a_concurrent_retry(job: Job, stored_rows: bytes | None = None) -> None:
        if not retry:
            retry["answer"] = "pending"  # once: the retry's own create passes straight on
            try:
                replay = services.queue.submit(
                    model=MODEL,
                    version=job.version,
                    matrix=rows_to_matrix(rows, services.repository.manifest(MODEL)),
                    idempotency_key="order-48",
                    fingerprint=fingerprint,
                )
                retry["answer"] = f"job {replay.job.job_id} (replayed={replay.replayed})"
            except OnnxqError as exc:  # refusing the retry (409, 503) would be fine
                retry["answer"] = exc.error_type
        create(job, stored_rows)

    monkeypatch.setattr(services.jobs, "create", create_after_a_concurrent_retry)

    first = submit(client, {"instances": rows}, key="order-48")

    assert first.status_code == 202
    job_id = first.get_json()["job_id"]
    jobs = sorted(key.decode() for key in job_keys(services))
    assert jobs == [keys.job(job_id)], f"the concurrent retry got {retry['answer']}"


# Version pinning


def test_predict_pinned_to_version_1_answers_from_version_1(
    client: FlaskClient, rows: list[list[float]]
) -> None:
    pinned = client.post(PREDICT_URL, json={"instances": rows, "version": 1})
    default = client.post(PREDICT_URL, json={"instances": rows})

    assert pinned.status_code == 200
    assert pinned.get_json()["version"] == 1
    assert pinned.get_json()["labels"] == default.get_json()["labels"]
    assert pinned.get_json()["probabilities"] == default.get_json()["probabilities"]


def test_a_job_pinned_to_version_1_is_recorded_and_run_as_version_1(
    client: FlaskClient, services: Services, rows: list[list[float]]
) -> None:
    response = submit(client, {"instances": rows, "version": 1})

    assert response.status_code == 202
    job_id = response.get_json()["job_id"]
    assert response.get_json()["version"] == 1
    assert predict_messages(job_id)[0]["version"] == 1
    run_job(services, job_id)
    done = client.get(f"/v1/jobs/{job_id}").get_json()
    assert done["status"] == "succeeded"
    assert done["result"]["version"] == 1


@pytest.mark.parametrize("url", [PREDICT_URL, JOBS_URL], ids=["predict", "jobs"])
def test_an_unknown_version_gets_404_model_not_found(
    client: FlaskClient, services: Services, rows: list[list[float]], url: str
) -> None:
    response = client.post(url, json={"instances": rows, "version": 99})

    assert response.status_code == 404
    assert error_of(response)["type"] == "model_not_found"
    assert "99" in error_of(response)["message"]
    assert job_keys(services) == []


# Rows as feature-name objects


def test_rows_as_feature_objects_predict_what_the_same_rows_as_arrays_predict(
    client: FlaskClient, dataset_rows: list[list[float]], feature_names: list[str]
) -> None:
    objects = [named(row, feature_names) for row in dataset_rows]
    objects[0] = dict(reversed(list(objects[0].items())))  # key order does not matter

    by_name = client.post(PREDICT_URL, json={"instances": objects})
    by_position = client.post(PREDICT_URL, json={"instances": dataset_rows})

    assert by_name.status_code == 200, by_name.get_json()
    assert by_name.get_json()["labels"] == by_position.get_json()["labels"]
    assert by_name.get_json()["probabilities"] == by_position.get_json()["probabilities"]
    assert set(by_name.get_json()["labels"]) == {0, 1}


def test_a_job_of_feature_objects_gives_the_array_result_and_logs_features_in_order(
    client: FlaskClient,
    services: Services,
    dataset_rows: list[list[float]],
    feature_names: list[str],
) -> None:
    objects = [dict(reversed(named(row, feature_names).items())) for row in dataset_rows]
    job_id = submit(client, {"instances": objects}).get_json()["job_id"]

    run_job(services, job_id)

    done = client.get(f"/v1/jobs/{job_id}").get_json()
    expected = client.post(PREDICT_URL, json={"instances": dataset_rows}).get_json()
    assert done["status"] == "succeeded"
    assert done["result"]["labels"] == expected["labels"]
    assert done["result"]["probabilities"] == expected["probabilities"]
    lines = prediction_lines(services.settings.prediction_log_dir)
    logged = [line for line in lines if line["job_id"] == job_id]
    assert [line["features"] for line in logged] == dataset_rows


def test_a_missing_feature_is_reported_with_its_row_and_name(
    client: FlaskClient, dataset_rows: list[list[float]], feature_names: list[str]
) -> None:
    objects = [named(row, feature_names) for row in dataset_rows[:3]]
    del objects[1]["mean texture"]

    response = client.post(PREDICT_URL, json={"instances": objects})

    assert response.status_code == 422
    error = error_of(response)
    assert error["type"] == "invalid_input"
    assert [(d["row"], d["feature"]) for d in error["details"]] == [(1, "mean texture")]
    assert "missing" in error["details"][0]["message"]


def test_an_unknown_feature_is_reported_with_its_row_and_name(
    client: FlaskClient,
    services: Services,
    dataset_rows: list[list[float]],
    feature_names: list[str],
) -> None:
    objects = [named(row, feature_names) for row in dataset_rows[:3]]
    objects[2]["mean radiuss"] = 1.0

    response = submit(client, {"instances": objects})

    assert response.status_code == 422
    error = error_of(response)
    assert [(d["row"], d["feature"]) for d in error["details"]] == [(2, "mean radiuss")]
    assert "unknown" in error["details"][0]["message"]
    assert job_keys(services) == []


def test_array_and_object_rows_can_be_mixed_in_one_batch(
    client: FlaskClient, dataset_rows: list[list[float]], feature_names: list[str]
) -> None:
    mixed: list[Any] = [
        named(row, feature_names) if index % 2 else row for index, row in enumerate(dataset_rows)
    ]

    response = client.post(PREDICT_URL, json={"instances": mixed})
    expected = client.post(PREDICT_URL, json={"instances": dataset_rows}).get_json()

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["labels"] == expected["labels"]
    assert response.get_json()["probabilities"] == expected["probabilities"]


# The model catalogue


def test_the_model_list_names_breast_cancer_with_its_versions(client: FlaskClient) -> None:
    response = client.get("/v1/models")

    assert response.status_code == 200
    assert response.get_json()["models"] == [{"name": MODEL, "versions": [1], "default_version": 1}]


@pytest.mark.parametrize("url", [f"/v1/models/{MODEL}", f"/v1/models/{MODEL}/versions/1"])
def test_a_model_description_lists_features_outputs_and_classes(
    client: FlaskClient, services: Services, url: str
) -> None:
    response = client.get(url)

    assert response.status_code == 200
    body = response.get_json()
    assert body["name"] == MODEL
    assert (body["version"], body["versions"], body["default_version"]) == (1, [1], 1)
    names = [feature["name"] for feature in body["features"]]
    assert names == load_breast_cancer().feature_names.tolist()
    assert {feature["dtype"] for feature in body["features"]} == {"float32"}
    assert [(output["name"], output["dtype"]) for output in body["outputs"]] == [
        ("label", "int64"),
        ("probabilities", "float32"),
    ]
    assert body["classes"] == [0, 1]
    assert body["sha256"] == services.repository.manifest(MODEL).sha256


@pytest.mark.parametrize("url", ["/v1/models/nope", f"/v1/models/{MODEL}/versions/99"])
def test_an_unknown_model_or_version_gets_404(client: FlaskClient, url: str) -> None:
    response = client.get(url)

    assert response.status_code == 404
    assert error_of(response)["type"] == "model_not_found"


# Poll headers and request ids


def test_polls_of_a_queued_job_carry_retry_after_and_ended_ones_do_not(
    client: FlaskClient,
    services: Services,
    rows: list[list[float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finishing = submit(client, {"instances": rows}).get_json()["job_id"]
    cancelling = submit(client, {"instances": rows}).get_json()["job_id"]

    assert client.get(f"/v1/jobs/{finishing}").headers["Retry-After"] == "1"
    polls: list[TestResponse] = []
    while_running(services, monkeypatch, lambda: polls.append(client.get(f"/v1/jobs/{finishing}")))

    run_job(services, finishing)
    client.delete(f"/v1/jobs/{cancelling}")

    [running] = polls
    assert running.get_json()["status"] == "running"
    assert running.headers["Retry-After"] == "1"

    for job_id, status in [(finishing, "succeeded"), (cancelling, "cancelled")]:
        polled = client.get(f"/v1/jobs/{job_id}")
        assert polled.get_json()["status"] == status
        assert "Retry-After" not in polled.headers


def test_the_job_document_carries_the_request_id_of_its_submit(
    client: FlaskClient, services: Services, rows: list[list[float]]
) -> None:
    generated = submit(client, {"instances": rows})
    offered = submit(client, {"instances": rows}, **{"X-Request-ID": "client-req-7"})

    for response in (generated, offered):
        job_id = response.get_json()["job_id"]
        assert (
            client.get(f"/v1/jobs/{job_id}").get_json()["request_id"]
            == (response.headers["X-Request-ID"])
        )
        assert predict_messages(job_id)[0]["request_id"] == response.headers["X-Request-ID"]
    assert offered.headers["X-Request-ID"] == "client-req-7"
