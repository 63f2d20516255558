"""Bad input always gets a clear 4xx naming the problem, never a 500."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from gateway.services import Services


@pytest.fixture
def width(services: Services, demo_model_name: str) -> int:
    return len(services.repository.manifest(demo_model_name).features)


@pytest.fixture(params=["predict", "jobs"])
def route(request: pytest.FixtureRequest, demo_model_name: str) -> str:
    return f"/v1/models/{demo_model_name}/{request.param}"


def _raw(client: FlaskClient, route: str, text: str, content_type: str = "application/json"):
    return client.post(route, data=text, content_type=content_type)


def test_a_nan_value_is_refused_with_its_row_and_feature(
    client: FlaskClient, route: str, width: int
) -> None:
    row = ", ".join(["1.0"] * (width - 1) + ["NaN"])
    response = _raw(client, route, f'{{"instances": [[{row}]]}}')
    assert response.status_code == 422
    detail = response.get_json()["error"]["details"][0]
    assert detail["row"] == 0
    assert detail["feature"] == "worst fractal dimension"
    assert "finite" in detail["message"]


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity"])
def test_an_infinite_value_is_refused(
    client: FlaskClient, route: str, width: int, literal: str
) -> None:
    good = ", ".join(["1.0"] * width)
    row = ", ".join([literal] + ["1.0"] * (width - 1))
    response = _raw(client, route, f'{{"instances": [[{good}], [{row}]]}}')
    assert response.status_code == 422
    rows_named = {d["row"] for d in response.get_json()["error"]["details"]}
    assert rows_named == {1}


def test_a_short_row_is_refused_with_the_expected_length(
    client: FlaskClient, route: str, width: int
) -> None:
    response = client.post(route, json={"instances": [[1.0] * width, [1.0] * (width - 1)]})
    assert response.status_code == 422
    detail = response.get_json()["error"]["details"][0]
    assert detail["row"] == 1
    assert f"expected {width} values, got {width - 1}" == detail["message"]


def test_every_problem_is_listed_not_only_the_first(
    client: FlaskClient, route: str, width: int
) -> None:
    bad = [["x"] + [1.0] * (width - 1), [1.0] * (width - 1) + [True]]
    response = client.post(route, json={"instances": bad})
    assert response.status_code == 422
    details = response.get_json()["error"]["details"]
    assert {(d["row"], d["feature"]) for d in details} == {
        (0, "mean radius"),
        (1, "worst fractal dimension"),
    }


@pytest.mark.parametrize(
    "body",
    [{}, {"instances": []}, {"instances": "nope"}, {"rows": [[1.0]]}, [[1.0]]],
    ids=["no-instances", "empty-batch", "not-a-list", "unknown-key", "top-level-list"],
)
def test_malformed_bodies_get_422(client: FlaskClient, route: str, body: object) -> None:
    response = client.post(route, json=body)
    assert response.status_code == 422
    assert response.get_json()["error"]["type"] == "invalid_input"


def test_a_body_that_is_not_json_gets_415(client: FlaskClient, route: str) -> None:
    response = _raw(client, route, '{"instances": [[1.0,')
    assert response.status_code == 415
    assert "not valid JSON" in response.get_json()["error"]["message"]


def test_a_non_json_content_type_gets_415(client: FlaskClient, route: str) -> None:
    response = _raw(client, route, "instances=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_a_body_over_the_size_limit_gets_413(
    client: FlaskClient, services: Services, route: str
) -> None:
    huge = "[" + ",".join(["1.0"] * (services.settings.max_body_bytes // 4)) + "]"
    response = _raw(client, route, f'{{"instances": [{huge}]}}')
    assert response.status_code == 413


def test_a_wrong_method_gets_405_with_allow(client: FlaskClient, route: str) -> None:
    response = client.get(route)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.get_json()["error"]["type"] == "method_not_allowed"


def test_a_key_given_twice_is_refused_as_ambiguous(client: FlaskClient, route: str) -> None:
    response = _raw(client, route, '{"instances": [[1.0]], "version": 1, "version": 2}')
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["type"] == "invalid_input"
    assert error["details"] == [
        {"field": "version", "message": "duplicate key: which value is meant?"}
    ]


HUGE_VERSION = "9" * 256  # a file name this long is ENAMETOOLONG, which once became a 500


def test_a_huge_version_is_a_404_on_predict_and_jobs(
    client: FlaskClient, route: str, width: int
) -> None:
    response = _raw(
        client,
        route,
        f'{{"instances": [[{", ".join(["1.0"] * width)}]], "version": {HUGE_VERSION}}}',
    )
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "model_not_found"


def test_a_huge_version_is_a_404_on_the_version_route(
    client: FlaskClient, demo_model_name: str
) -> None:
    response = client.get(f"/v1/models/{demo_model_name}/versions/{HUGE_VERSION}")
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "model_not_found"
    response = client.get(f"/v2/models/{demo_model_name}/versions/{HUGE_VERSION}")
    assert response.status_code == 404
