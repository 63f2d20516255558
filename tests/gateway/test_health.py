from __future__ import annotations

from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from gateway import create_app
from gateway.services import Services
from onnxq.settings import Settings
from tests.support.apps import empty_repository_client


def test_health_answers_ok_without_touching_redis_or_models(tmp_path: Path) -> None:
    client, _ = empty_repository_client(tmp_path, fake_redis=False)
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_is_200_when_models_are_loaded_and_redis_answers(client: FlaskClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"models": True, "redis": True}


def test_ready_is_503_when_redis_does_not_answer(settings: Settings) -> None:
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()  # real, unreachable
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"models": True, "redis": False}


def test_ready_is_503_until_a_model_appears_then_recovers_without_restart(
    tmp_path: Path, model_dir: Path
) -> None:
    client, empty = empty_repository_client(tmp_path)
    assert client.get("/ready").status_code == 503

    empty.symlink_to(model_dir)  # the model arrives after start-up
    assert client.get("/ready").status_code == 200


def test_ready_is_503_not_500_when_redis_answers_with_an_error(
    app: Flask, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied() -> bool:
        raise redis.ResponseError("DENIED Redis is running in protected mode")

    monkeypatch.setattr(services.redis, "ping", denied)
    response = app.test_client().get("/ready")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"] is False
