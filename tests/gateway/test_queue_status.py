"""`GET /v1/queue` and the backlog gauges on `/metrics`: the worker autoscaler's signal."""

from __future__ import annotations

import fakeredis
from flask.testing import FlaskClient
from pydantic import SecretStr

from gateway import create_app
from onnxq.broker.celery_app import make_celery
from onnxq.devtools.metrics_text import label_sets, sample
from onnxq.settings import Settings
from tests.support.broker import in_memory_celery


def _submit(client: FlaskClient, name: str, rows: list[list[float]]) -> str:
    response = client.post(f"/v1/models/{name}/jobs", json={"instances": rows})
    assert response.status_code == 202
    return str(response.get_json()["job_id"])


def test_the_queue_is_empty_before_any_job(client: FlaskClient) -> None:
    response = client.get("/v1/queue")
    assert response.status_code == 200
    assert response.get_json() == {"outstanding": 0, "oldest_age_seconds": 0.0}


def test_submitted_jobs_are_outstanding_until_they_end(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    first = _submit(client, demo_model_name, rows)
    _submit(client, demo_model_name, rows)
    body = client.get("/v1/queue").get_json()
    assert body["outstanding"] == 2
    assert 0.0 <= body["oldest_age_seconds"] < 60

    assert client.delete(f"/v1/jobs/{first}").status_code == 200  # cancelled: it has ended
    assert client.get("/v1/queue").get_json()["outstanding"] == 1


def test_the_same_numbers_are_gauges_on_metrics(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    for _ in range(3):
        _submit(client, demo_model_name, rows)
    text = client.get("/metrics").get_data(as_text=True)
    assert "# TYPE onnxq_jobs_outstanding gauge" in text
    assert sample(text, "onnxq_jobs_outstanding") == 3
    assert sample(text, "onnxq_jobs_oldest_outstanding_age_seconds") >= 0
    assert label_sets(text, "onnxq_jobs_oldest_outstanding_age_seconds") == [{}]


def test_the_queue_route_needs_an_api_key_when_keys_are_configured(
    settings: Settings, redis_client: fakeredis.FakeRedis
) -> None:
    locked = settings.model_copy(
        update={"api_keys": [SecretStr("scaler-key")], "allow_unauthenticated": False}
    )
    app = create_app(
        {
            "TESTING": True,
            "SETTINGS": locked,
            "REDIS_CLIENT": redis_client,
            "CELERY_APP": in_memory_celery(locked),
        }
    )
    client = app.test_client()
    assert client.get("/v1/queue").status_code == 401
    # KEDA's metrics-api scaler sends it as a header (authMode apiKey, keyParamName X-API-Key).
    assert client.get("/v1/queue", headers={"X-API-Key": "scaler-key"}).status_code == 200


def test_redis_down_is_503_on_the_route_and_no_gauge_on_metrics(settings: Settings) -> None:
    celery = make_celery(settings)
    celery.conf.broker_url = "memory://"
    client = create_app({"TESTING": True, "SETTINGS": settings, "CELERY_APP": celery}).test_client()

    response = client.get("/v1/queue")
    assert response.status_code == 503
    assert response.get_json()["error"]["type"] == "queue_unavailable"
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert not label_sets(scrape.get_data(as_text=True), "onnxq_jobs_outstanding")


def test_the_route_is_in_the_openapi_document(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/v1/queue"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "503"}
