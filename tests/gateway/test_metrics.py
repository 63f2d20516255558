"""/metrics from the Flask test client: names, labels, and that they move with requests."""

from __future__ import annotations

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr
from structlog.testing import capture_logs

from gateway import create_app
from gateway.services import Services
from onnxq.broker.celery_app import make_celery
from onnxq.devtools.metrics_text import label_sets, sample
from onnxq.settings import Settings

PREDICT_ROUTE = "/v1/models/<name>/predict"
INFER_ROUTE = "/v2/models/<name>/infer"
INTERNAL_ERROR = "internal error; quote the X-Request-ID header when reporting it"


def scrape(client: FlaskClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_metrics_are_prometheus_text_with_every_onnxq_family(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    text = response.get_data(as_text=True)
    for name in (
        "onnxq_http_requests_total",
        "onnxq_http_request_duration_seconds",
        "onnxq_jobs_submitted_total",
        "onnxq_jobs_succeeded_total",
        "onnxq_jobs_failed_total",
        "onnxq_job_queue_wait_seconds",
        "onnxq_inference_duration_seconds",
        "onnxq_microbatch_jobs",
        "onnxq_rows_predicted_total",
        "onnxq_drift_psi",
        "onnxq_drift_drifted",
        "onnxq_queue_depth",
    ):
        assert f"# TYPE {name} " in text, name


def test_metrics_need_no_api_key_even_when_keys_are_required(
    settings: Settings, redis_client: fakeredis.FakeRedis
) -> None:
    locked = settings.model_copy(
        update={"api_keys": [SecretStr("k-1")], "allow_unauthenticated": False}
    )
    celery = make_celery(locked)
    celery.conf.broker_url = "memory://"
    app = create_app(
        {"TESTING": True, "SETTINGS": locked, "REDIS_CLIENT": redis_client, "CELERY_APP": celery}
    )
    client = app.test_client()
    assert client.post("/v1/models/x/predict", json={}).status_code == 401
    assert client.get("/metrics").status_code == 200


def test_a_sync_predict_moves_the_request_inference_and_row_metrics(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    before = scrape(client)
    response = client.post(f"/v1/models/{demo_model_name}/predict", json={"instances": rows})
    assert response.status_code == 200
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    route = {"route": PREDICT_ROUTE, "method": "POST"}
    model = {"model": demo_model_name, "source": "sync"}
    assert moved("onnxq_http_requests_total", **route, status="200") == 1
    assert moved("onnxq_http_request_duration_seconds_count", **route) == 1
    assert moved("onnxq_http_request_duration_seconds_sum", **route) > 0
    assert moved("onnxq_rows_predicted_total", **model) == len(rows)
    assert moved("onnxq_inference_duration_seconds_count", **model) == 1


def test_a_rejected_request_is_counted_under_its_own_status(
    client: FlaskClient, demo_model_name: str
) -> None:
    labels = {"route": PREDICT_ROUTE, "method": "POST", "status": "422"}
    before = sample(scrape(client), "onnxq_http_requests_total", **labels)
    bad = client.post(f"/v1/models/{demo_model_name}/predict", json={"instances": [[1.0]]})
    assert bad.status_code == 422
    assert sample(scrape(client), "onnxq_http_requests_total", **labels) == before + 1


def test_unknown_paths_are_counted_under_one_unmatched_route(client: FlaskClient) -> None:
    for path in ("/nope", "/wp-admin.php", "/a/b/c"):
        assert client.get(path).status_code == 404
    text = scrape(client)
    routes = {labels["route"] for labels in label_sets(text, "onnxq_http_requests_total")}
    assert "unmatched" in routes
    assert not routes & {"/nope", "/wp-admin.php", "/a/b/c"}


def test_a_submitted_job_is_counted_by_model(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    before = sample(scrape(client), "onnxq_jobs_submitted_total", model=demo_model_name)
    response = client.post(f"/v1/models/{demo_model_name}/jobs", json={"instances": rows})
    assert response.status_code == 202
    replay = {"Idempotency-Key": "metrics-1"}
    for _ in range(2):  # an idempotent replay queues nothing new
        client.post(f"/v1/models/{demo_model_name}/jobs", json={"instances": rows}, headers=replay)
    after = sample(scrape(client), "onnxq_jobs_submitted_total", model=demo_model_name)
    assert after == before + 2


def test_queue_depth_is_read_from_redis_at_scrape_time(
    app: Flask, client: FlaskClient, redis_client: fakeredis.FakeRedis, settings: Settings
) -> None:
    redis_client.lpush(settings.queue_name, "m1", "m2", "m3")
    text = scrape(client)
    assert sample(text, "onnxq_queue_depth", queue=settings.queue_name) == 3
    assert sample(text, "onnxq_queue_depth", queue=f"{settings.queue_name}.callbacks") == 0
    redis_client.rpop(settings.queue_name)
    assert sample(scrape(client), "onnxq_queue_depth", queue=settings.queue_name) == 2


def test_a_scrape_still_answers_when_redis_is_down(settings: Settings) -> None:
    celery = make_celery(settings)
    celery.conf.broker_url = "memory://"
    app = create_app({"TESTING": True, "SETTINGS": settings, "CELERY_APP": celery})
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert "onnxq_http_requests_total" in response.get_data(as_text=True)
    assert not label_sets(response.get_data(as_text=True), "onnxq_queue_depth")


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_an_unexpected_error_is_logged_and_counted_with_its_exception_type(
    client: FlaskClient,
    services: Services,
    demo_model_name: str,
    rows: list[list[float]],
    monkeypatch: pytest.MonkeyPatch,
    api: str,
) -> None:
    def explode(*_: object, **__: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(services.prediction_log, "record", explode)
    route = PREDICT_ROUTE if api == "v1" else INFER_ROUTE
    labels = {"route": route, "method": "POST", "status": "500"}
    before = sample(scrape(client), "onnxq_http_requests_total", **labels)
    with capture_logs() as events:
        if api == "v1":
            body: object = {"instances": rows}
        else:
            tensor = {"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP32"}
            body = {"inputs": [{**tensor, "data": rows}]}
        response = client.post(route.replace("<name>", demo_model_name), json=body)
    assert response.status_code == 500
    # Each API writes the same error in its own shape.
    v1_error = {"type": "internal_error", "message": INTERNAL_ERROR}
    assert response.get_json() == {"error": v1_error if api == "v1" else INTERNAL_ERROR}
    [request_event] = [e for e in events if e["event"] == "request"]
    assert request_event["error_type"] == "internal_error"
    assert request_event["exception_type"] == "ZeroDivisionError"
    [error_event] = [e for e in events if e["event"] == "unhandled_error"]
    assert error_event["exception_type"] == "ZeroDivisionError"
    assert sample(scrape(client), "onnxq_http_requests_total", **labels) == before + 1
