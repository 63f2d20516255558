"""API keys guard every route except the probes; keys never leak into logs or bodies."""

from __future__ import annotations

import logging
from pathlib import Path

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway import create_app
from gateway.auth import AuthenticationNotConfigured
from onnxq.settings import Settings

KEYS = "key-one-5f2c9a,key-two-77d1e0"
JOB = "/v1/jobs/0123456789abcdef0123456789abcdef"


def keyed_app(settings: Settings, **changes: object) -> Flask:
    keyed = settings.model_copy(
        update={
            "api_keys": Settings(_env_file=None, api_keys=KEYS).api_keys,
            "allow_unauthenticated": False,
            **changes,
        }
    )
    return create_app({"TESTING": True, "SETTINGS": keyed, "REDIS_CLIENT": fakeredis.FakeRedis()})


@pytest.fixture
def secured(settings: Settings) -> FlaskClient:
    return keyed_app(settings).test_client()


def protected_routes(app: Flask) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, with sample values for its arguments."""
    samples = {
        "name": "breast-cancer",
        "version": "1",
        "job_id": JOB.rsplit("/", 1)[1],
        "filename": "index.html",
    }
    routes = []
    for rule in app.url_map.iter_rules():
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<{argument}>", samples.get(argument, "x"))
            path = path.replace(f"<int:{argument}>", samples.get(argument, "1"))
            path = path.replace(f"<path:{argument}>", samples.get(argument, "x"))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    open_paths = {"/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready"}
    return [
        (method, path)
        for method, path in routes
        if path not in open_paths and not path.startswith("/docs/static/")  # vendor JS and CSS
    ]


def test_every_route_but_the_probes_answers_401_without_a_key(secured: FlaskClient) -> None:
    routes = protected_routes(secured.application)
    assert ("POST", "/v1/models/breast-cancer/jobs") in routes
    for method, path in routes:
        response = secured.open(path, method=method, json={})
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)


def test_the_probes_answer_without_a_key(secured: FlaskClient) -> None:
    assert secured.get("/health").status_code == 200
    assert secured.get("/ready").status_code == 200


def test_a_wrong_key_gets_401(secured: FlaskClient) -> None:
    response = secured.get(JOB, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.get_json()["error"]["type"] == "unauthorized"


@pytest.mark.parametrize(
    "headers", [{"Authorization": "Bearer key-two-77d1e0"}, {"X-API-Key": "key-one-5f2c9a"}]
)
def test_any_configured_key_is_accepted_as_bearer_or_x_api_key(
    secured: FlaskClient, headers: dict[str, str]
) -> None:
    assert secured.get(JOB, headers=headers).status_code == 404  # in; the job just does not exist


def test_keys_can_come_from_a_mounted_file(settings: Settings, tmp_path: Path) -> None:
    secret = tmp_path / "api_keys"
    secret.write_text("file-key-a\nfile-key-b\n")
    from_file = Settings(_env_file=None, api_keys_file=secret)
    assert [key.get_secret_value() for key in from_file.api_keys] == ["file-key-a", "file-key-b"]
    client = create_app(
        {
            "TESTING": True,
            "SETTINGS": settings.model_copy(
                update={"api_keys": from_file.api_keys, "allow_unauthenticated": False}
            ),
            "REDIS_CLIENT": fakeredis.FakeRedis(),
        }
    ).test_client()
    assert client.get(JOB, headers={"X-API-Key": "file-key-b"}).status_code == 404
    assert client.get(JOB).status_code == 401


def test_the_gateway_refuses_to_start_without_keys_unless_development_is_asked_for(
    settings: Settings,
) -> None:
    closed = settings.model_copy(update={"api_keys": [], "allow_unauthenticated": False})
    with pytest.raises(AuthenticationNotConfigured, match="ONNXQ_API_KEYS"):
        create_app({"TESTING": True, "SETTINGS": closed})


def test_development_mode_logs_a_warning_at_start(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    create_app({"TESTING": True, "SETTINGS": settings, "REDIS_CLIENT": fakeredis.FakeRedis()})
    assert "authentication_disabled" in capsys.readouterr().out


def test_keys_never_appear_in_logs_or_error_bodies(
    secured: FlaskClient, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG):
        wrong = secured.get(JOB, headers={"Authorization": "Bearer guess-a1b2c3"})
        right = secured.post(
            "/v1/models/breast-cancer/predict",
            json={"instances": [[1.0]]},
            headers={"X-API-Key": "key-one-5f2c9a"},
        )
    seen = caplog.text + capsys.readouterr().out + wrong.get_data(as_text=True)
    seen += right.get_data(as_text=True)
    for secret in ("key-one-5f2c9a", "key-two-77d1e0", "guess-a1b2c3"):
        assert secret not in seen
    assert "**********" in repr(Settings(_env_file=None, api_keys=KEYS))
