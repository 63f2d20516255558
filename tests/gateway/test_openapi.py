"""The OpenAPI document covers every route, and schemathesis finds no server error in any."""

from __future__ import annotations

from typing import Any

import fakeredis
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gateway import create_app
from gateway.openapi import build_spec
from onnxq.jobs.record import PRIVATE_FIELDS, Job
from onnxq.models.inputs import JobRequest
from onnxq.settings import Settings
from tests.support.broker import in_memory_celery

API_KEY = "schemathesis-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
UNDOCUMENTED = {
    "openapi.openapi_json",
    "openapi.docs",
    "openapi.docs_static",
    "static",
    "metrics.scrape",  # Prometheus text, not JSON API
}


def test_openapi_json_is_3_1_and_documents_every_route(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    documented = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
    }
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED:
            continue
        path = rule.rule.replace("<int:", "<").replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in documented, (method, path)


def test_the_job_schema_documents_the_fields_answers_carry_and_no_stored_only_ones(
    app: Flask,
) -> None:
    documented = set(build_spec(app)["components"]["schemas"]["Job"]["properties"])
    assert documented == set(Job.model_fields) - PRIVATE_FIELDS


def test_request_schemas_are_the_models_that_validate_requests(app: Flask) -> None:
    schemas = build_spec(app)["components"]["schemas"]
    assert set(schemas["JobRequest"]["properties"]) == set(JobRequest.model_fields)
    assert schemas["JobRequest"]["additionalProperties"] is False


def test_docs_page_renders_with_bundled_swagger_ui(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "docs/static/swagger-ui-bundle.js" in html
    assert '"openapi": "3.1.0"' in html
    assert 'src="http' not in html and 'href="http' not in html  # nothing from the internet
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200


def exercise(operation: Any, examples: int) -> tuple[int, str | None]:
    """Run one operation's generated cases; return how many ran and the first failure."""
    calls = 0

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck)
    )
    def run(case: schemathesis.Case) -> None:
        nonlocal calls
        calls += 1
        # Every check but positive_data_acceptance: a schema-valid row may still be the
        # wrong width for this model (checked against its manifest), which is a 422.
        case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

    try:
        run()
    except Exception as exc:
        return calls, f"{operation.label}: {str(exc)[:800]}"
    return calls, None


def test_schemathesis_finds_no_server_error_and_no_schema_violation(settings: Settings) -> None:
    """Property-based run over every documented operation (the pytest plugin predates pytest 9)."""
    keyed = settings.model_copy(
        update={"api_keys": [SecretStr(API_KEY)], "allow_unauthenticated": False}
    )
    celery = in_memory_celery(keyed)
    app = create_app(
        {
            "TESTING": True,
            "SETTINGS": keyed,
            "REDIS_CLIENT": fakeredis.FakeRedis(),
            "CELERY_APP": celery,
        }
    )
    api = schemathesis.openapi.from_wsgi("/openapi.json", app, headers=AUTH)
    results = [exercise(result.ok(), examples=40) for result in api.get_all_operations()]
    failures = [failure for _, failure in results if failure]
    assert not failures, "\n\n".join(failures)
    assert sum(calls for calls, _ in results) > 10 * len(results)
