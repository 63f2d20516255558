"""Submit through a real gunicorn gateway, run on a real Celery worker, over a real Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import requests
from sklearn.datasets import load_breast_cancer

from onnxq.devtools.waiting import wait_until
from tests.integration.conftest import Stack
from tests.support.log_events import events
from tests.support.prediction_log import prediction_lines

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dataset_rows() -> list[list[float]]:
    return load_breast_cancer().data.tolist()


def onnxruntime_outputs(model_dir: Path, rows: list[list[float]]) -> tuple[list[Any], np.ndarray]:
    """What onnxruntime itself says for these rows, computed here and not by onnxq."""
    session = ort.InferenceSession(str(model_dir / "breast-cancer" / "1" / "model.onnx"))
    labels, probabilities = session.run(
        ["label", "probabilities"], {"input": np.asarray(rows, dtype=np.float32)}
    )
    return labels.tolist(), probabilities


def job_id(location: str) -> str:
    return location.rsplit("/", 1)[1]


def test_jobs_submitted_through_the_gateway_are_run_by_the_worker_with_onnxruntime_results(
    stack: Stack, dataset_rows: list[list[float]]
) -> None:
    batches = [dataset_rows[i : i + 7] for i in range(0, 70, 7)]
    locations = []
    for batch in batches:
        response = requests.post(
            stack.url("/v1/models/breast-cancer/jobs"), json={"instances": batch}, timeout=5
        )
        assert response.status_code == 202, response.text
        locations.append(response.headers["Location"])

    for batch, location in zip(batches, locations, strict=True):
        job = stack.ended_job(job_id(location))
        assert job["status"] == "succeeded", job
        labels, probabilities = onnxruntime_outputs(stack.model_dir, batch)
        assert job["result"]["labels"] == labels
        np.testing.assert_array_equal(np.float32(job["result"]["probabilities"]), probabilities)
        assert job["submitted_at"] <= job["started_at"] <= job["finished_at"]

    job_ids = {job_id(location) for location in locations}
    logged_lines = prediction_lines(stack.prediction_log_dir)
    lines = [line for line in logged_lines if line["job_id"] in job_ids]
    assert len(lines) == 70
    assert {line["source"] for line in lines} == {"job"}
    by_job: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_job.setdefault(line["job_id"], []).append(line)
    for batch, location in zip(batches, locations, strict=True):
        logged = sorted(by_job[job_id(location)], key=lambda line: line["row"])
        assert [line["features"] for line in logged] == batch


def test_sync_predict_on_gunicorn_matches_onnxruntime_and_is_logged(
    stack: Stack, dataset_rows: list[list[float]]
) -> None:
    rows = dataset_rows[100:120]
    response = requests.post(
        stack.url("/v1/models/breast-cancer/predict"), json={"instances": rows}, timeout=5
    )
    assert response.status_code == 200, response.text
    labels, probabilities = onnxruntime_outputs(stack.model_dir, rows)
    assert response.json()["labels"] == labels
    np.testing.assert_array_equal(np.float32(response.json()["probabilities"]), probabilities)

    request_id = response.headers["X-Request-ID"]
    logged = prediction_lines(stack.prediction_log_dir)
    lines = [line for line in logged if line["request_id"] == request_id]
    assert [line["row"] for line in lines] == list(range(20))
    assert all(line["source"] == "sync" and line["job_id"] is None for line in lines)


def test_a_nan_literal_gets_422_from_the_real_server(stack: Stack) -> None:
    row = ",".join(["1.0"] * 29 + ["NaN"])
    response = requests.post(
        stack.url("/v1/models/breast-cancer/jobs"),
        data=f'{{"instances": [[{row}]]}}',
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["feature"] == "worst fractal dimension"


def test_the_gateway_and_worker_write_one_json_event_per_request_and_job(stack: Stack) -> None:
    response = requests.post(
        stack.url("/v1/models/breast-cancer/jobs"),
        json={"instances": [[1.0] * 30]},
        headers={"X-Request-ID": "e2e-log-check"},
        timeout=5,
    )
    job = stack.ended_job(job_id(response.headers["Location"]))

    def logged() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        assert stack.worker is not None
        return (
            events(stack.gateway.output(), "request", request_id="e2e-log-check"),
            events(stack.worker.output(), "job", request_id="e2e-log-check"),
        )

    wait_until(lambda: all(logged()), 10, "the request and job events")
    requests_logged, jobs_logged = logged()
    assert len(requests_logged) == 1
    assert requests_logged[0]["status"] == 202
    assert requests_logged[0]["job_id"] == job["job_id"]
    assert len(jobs_logged) == 1
    assert jobs_logged[0]["job_id"] == job["job_id"]
    assert jobs_logged[0]["status"] == "succeeded"
