"""Gateway apps built in the test process."""

from __future__ import annotations

from pathlib import Path

import fakeredis
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from gateway import create_app
from onnxq.settings import Settings
from tests.support.broker import UNREACHABLE_REDIS


def empty_repository_client(tmp_path: Path, *, fake_redis: bool = True) -> tuple[FlaskClient, Path]:
    """A test client of a gateway whose model directory does not exist yet, and that directory.

    The job store is fakeredis, or with `fake_redis=False` a real client of a Redis that never
    answers.
    """
    empty = tmp_path / "models"
    settings = Settings(
        _env_file=None,
        model_dir=empty,
        redis_url=UNREACHABLE_REDIS,
        allow_unauthenticated=True,
    )
    config: dict[str, object] = {"TESTING": True, "SETTINGS": settings}
    if fake_redis:
        config["REDIS_CLIENT"] = fakeredis.FakeRedis()
    return create_app(config).test_client(), empty


def invalid_input_fields(response: TestResponse) -> list[str]:
    """The fields a 422 `invalid_input` answer names, in its order (fails on any other answer)."""
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["type"] == "invalid_input"
    return [detail["field"] for detail in error["details"]]
