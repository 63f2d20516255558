"""Real gunicorn (2 workers) + Celery worker (prefork 2): metrics from both, and one request id
followed from the gateway's event into the worker's job event and the prediction log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from onnxq.devtools.metrics_text import label_sets, sample
from onnxq.devtools.waiting import wait_until
from tests.integration.conftest import Stack, running_stack
from tests.support.log_events import events
from tests.support.prediction_log import prediction_lines

pytestmark = pytest.mark.integration

MODEL = "breast-cancer"
SECRET_KEY = "obs-secret-key-never-logged"
AUTH = {"Authorization": f"Bearer {SECRET_KEY}"}
ROW = [1.0] * 30


@pytest.fixture(scope="module")
def observed(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, redis_binary: str
) -> Iterator[Stack]:
    extra = {"ONNXQ_API_KEYS": SECRET_KEY, "ONNXQ_ALLOW_UNAUTHENTICATED": "false"}
    with running_stack(
        tmp_path_factory.mktemp("observed"), model_dir, redis_binary, extra_env=extra
    ) as stack:
        yield stack


def gateway_metrics(stack: Stack) -> str:
    response = requests.get(stack.url("/metrics"), timeout=5)  # no key: scrapes are open
    assert response.status_code == 200
    return response.text


def worker_metrics(stack: Stack) -> str:
    port = stack.env["ONNXQ_WORKER_METRICS_PORT"]
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    return response.text


def submit(stack: Stack, request_id: str) -> str:
    response = requests.post(
        stack.url(f"/v1/models/{MODEL}/jobs"),
        json={"instances": [ROW, ROW]},
        headers={**AUTH, "X-Request-ID": request_id},
        timeout=5,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def wait_for_jobs(stack: Stack, job_ids: list[str]) -> None:
    for job_id in job_ids:
        job = stack.ended_job(job_id, headers=AUTH)
        assert job["status"] == "succeeded", job


def test_both_metrics_endpoints_see_requests_jobs_and_histograms_move(observed: Stack) -> None:
    gateway_before, worker_before = gateway_metrics(observed), worker_metrics(observed)
    # New connections each time: the kernel spreads them over both gunicorn workers, and
    # each scrape (served by either) must still count all of them.
    for _ in range(20):
        answer = requests.post(
            observed.url(f"/v1/models/{MODEL}/predict"),
            json={"instances": [ROW]},
            headers=AUTH,
            timeout=5,
        )
        assert answer.status_code == 200
    job_ids = [submit(observed, f"obs-metrics-{n}") for n in range(6)]
    wait_for_jobs(observed, job_ids)

    def moved(before: str, after: str, name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    predict = {"route": "/v1/models/<name>/predict", "method": "POST"}
    for _ in range(3):  # whichever worker answers the scrape, the sums are the same
        gateway_after = gateway_metrics(observed)
        assert (
            moved(
                gateway_before, gateway_after, "onnxq_http_requests_total", **predict, status="200"
            )
            == 20
        )
        assert (
            moved(
                gateway_before,
                gateway_after,
                "onnxq_http_request_duration_seconds_count",
                **predict,
            )
            == 20
        )
        assert (
            moved(
                gateway_before,
                gateway_after,
                "onnxq_rows_predicted_total",
                model=MODEL,
                source="sync",
            )
            == 20
        )
        assert moved(gateway_before, gateway_after, "onnxq_jobs_submitted_total", model=MODEL) == 6
    queues = {labels["queue"] for labels in label_sets(gateway_after, "onnxq_queue_depth")}
    assert queues == {"onnxq.predict", "onnxq.predict.callbacks"}
    assert sample(gateway_after, "onnxq_queue_depth", queue="onnxq.predict") == 0  # all ran

    def worker_moved(name: str, **labels: str) -> float:
        return moved(worker_before, worker_metrics(observed), name, **labels)

    wait_until(
        lambda: worker_moved("onnxq_jobs_succeeded_total", model=MODEL) == 6,
        10,
        "the worker's job counter",
    )
    assert worker_moved("onnxq_job_queue_wait_seconds_count", model=MODEL) == 6
    assert worker_moved("onnxq_job_queue_wait_seconds_sum", model=MODEL) > 0
    assert worker_moved("onnxq_rows_predicted_total", model=MODEL, source="job") == 12
    assert worker_moved("onnxq_inference_duration_seconds_count", model=MODEL, source="job") >= 1
    assert worker_moved("onnxq_microbatch_jobs_sum") == 6  # every job ran in some batch
    assert worker_moved("onnxq_jobs_failed_total", model=MODEL, error_type="poison_job") == 0


def test_one_request_id_follows_a_job_through_gateway_worker_and_prediction_log(
    observed: Stack,
) -> None:
    request_id = "obs-trace-42"
    job_id = submit(observed, request_id)
    wait_for_jobs(observed, [job_id])

    def logged() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        assert observed.worker is not None
        return (
            events(observed.gateway.output(), "request", request_id=request_id),
            events(observed.worker.output(), "job", request_id=request_id),
        )

    wait_until(lambda: all(logged()), 10, "the request and job events")
    [request_event], [job_event] = logged()
    assert request_event["job_id"] == job_id
    assert request_event["status"] == 202
    assert (request_event["model"], request_event["version"], request_event["rows"]) == (
        MODEL,
        1,
        2,
    )
    assert request_event["duration_ms"] > 0
    assert request_event["process"] == "gateway"
    assert job_event["job_id"] == job_id
    assert job_event["status"] == "succeeded"
    assert (job_event["model"], job_event["version"], job_event["rows"]) == (MODEL, 1, 2)
    assert job_event["duration_ms"] > 0
    assert job_event["process"] == "worker"

    lines = [
        line for line in prediction_lines(observed.prediction_log_dir) if line["job_id"] == job_id
    ]
    assert [line["row"] for line in lines] == [0, 1]
    assert {line["request_id"] for line in lines} == {request_id}
    assert {line["source"] for line in lines} == {"job"}


def test_gateway_and_worker_log_their_configuration_at_start_without_secrets(
    observed: Stack,
) -> None:
    gateway_output = observed.gateway.output()
    worker_output = observed.worker.output()  # type: ignore[union-attr]
    gateway_configs = events(gateway_output, "configuration")
    worker_configs = events(worker_output, "configuration")
    # One per gunicorn worker process (running_stack waited for every one to start).
    assert len(gateway_configs) == observed.gateway_processes == 2
    assert len({e["pid"] for e in gateway_configs}) == 2
    assert len(worker_configs) == 1
    for event in (*gateway_configs, *worker_configs):
        settings = event["settings"]
        assert settings["api_keys"] == "1 configured"
        assert settings["redis_url"] == observed.env["ONNXQ_REDIS_URL"]
        assert settings["worker_metrics_port"] == int(observed.env["ONNXQ_WORKER_METRICS_PORT"])
    assert SECRET_KEY not in gateway_output
    assert SECRET_KEY not in worker_output
