"""GET /v1/models/<name>/drift: the latest report the drift check wrote, as JSON or as its page."""

from __future__ import annotations

import fakeredis
import numpy as np
import pytest
from flask.testing import FlaskClient
from pydantic import SecretStr

from drift import DriftReport, Family, build_profile, compare
from drift.report_files import write_report
from gateway import create_app
from onnxq.settings import Settings
from tests.support.drift_reports import drift_report

URL = "/v1/models/breast-cancer/drift"


def a_report(model: str = "breast-cancer") -> DriftReport:
    rng = np.random.default_rng(0)
    profile = build_profile(rng.normal(0, 1, (500, 2)), feature_names=["steady", "moved"])
    steady, moved = profile.features
    features = [
        compare(moved, [0] * 9 + [1000], family=Family(tests=4)),
        compare(steady, [100] * 10, family=Family(tests=4)),
    ]
    return drift_report(features, model=model, tests=4, files=["predictions-2026-11-29.jsonl"])


@pytest.fixture
def written(settings: Settings) -> DriftReport:
    report = a_report()
    write_report(report, settings.state_dir / "drift" / "breast-cancer")
    return report


def test_the_latest_report_is_served_as_json(client: FlaskClient, written: DriftReport) -> None:
    response = client.get(URL)
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert DriftReport.model_validate(body) == written
    assert body["drifted"] == ["moved"]
    assert [f["name"] for f in body["features"]] == ["moved", "steady"]


def test_format_html_serves_the_self_contained_page(
    client: FlaskClient, written: DriftReport
) -> None:
    response = client.get(URL + "?format=html")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2
    assert page.index(">moved <") < page.index(">steady <")  # drifted first
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


def test_an_unknown_format_is_a_422_naming_the_parameter(
    client: FlaskClient, written: DriftReport
) -> None:
    response = client.get(URL + "?format=xml")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["type"] == "invalid_input" and error["details"][0]["loc"] == ["query", "format"]


def test_a_model_without_a_report_yet_is_a_404_saying_so(client: FlaskClient) -> None:
    response = client.get(URL)
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["type"] == "drift_report_not_found"
    assert "onnxq drift breast-cancer" in error["message"]


def test_an_unknown_model_is_a_404_even_if_a_report_lies_around(
    client: FlaskClient, settings: Settings
) -> None:
    write_report(a_report("ghost"), settings.state_dir / "drift" / "ghost")
    response = client.get("/v1/models/ghost/drift")
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "model_not_found"
    assert client.get("/v1/models/..%2F..%2Fetc/drift").status_code == 404


def test_the_route_needs_an_api_key(settings: Settings, written: DriftReport) -> None:
    keyed = settings.model_copy(
        update={"api_keys": [SecretStr("drift-key")], "allow_unauthenticated": False}
    )
    client = create_app(
        {"TESTING": True, "SETTINGS": keyed, "REDIS_CLIENT": fakeredis.FakeRedis()}
    ).test_client()
    assert client.get(URL).status_code == 401
    assert client.get(URL + "?format=html").status_code == 401
    assert client.get(URL, headers={"Authorization": "Bearer drift-key"}).status_code == 200
