from __future__ import annotations

import fakeredis
import pytest
from flask.testing import FlaskClient

from gateway import create_app
from onnxq.settings import Settings


@pytest.fixture
def secured(settings: Settings) -> FlaskClient:
    keyed = settings.model_copy(update={"api_keys": Settings(
        _env_file=None, api_keys="key-one,key-two").api_keys})  # fmt: skip
    app = create_app({"TESTING": True, "SETTINGS": keyed, "REDIS_CLIENT": fakeredis.FakeRedis()})
    return app.test_client()


def test_v1_routes_without_a_key_get_401_with_www_authenticate(secured: FlaskClient) -> None:
    response = secured.get("/v1/jobs/0123456789abcdef0123456789abcdef")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"]["type"] == "unauthorized"


def test_a_wrong_key_gets_401(secured: FlaskClient) -> None:
    response = secured.get(
        "/v1/jobs/0123456789abcdef0123456789abcdef", headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer key-two"}, {"X-API-Key": "key-one"}])
def test_any_configured_key_is_accepted_as_bearer_or_x_api_key(
    secured: FlaskClient, headers: dict[str, str]
) -> None:
    response = secured.get("/v1/jobs/0123456789abcdef0123456789abcdef", headers=headers)
    assert response.status_code == 404  # authenticated; the job just does not exist


def test_health_and_ready_need_no_key(secured: FlaskClient) -> None:
    assert secured.get("/health").status_code == 200
    assert secured.get("/ready").status_code == 200


def test_no_configured_keys_means_open_routes(client: FlaskClient) -> None:
    assert client.get("/v1/jobs/0123456789abcdef0123456789abcdef").status_code == 404
