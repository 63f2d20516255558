"""Gateway apps built in the test process."""

from __future__ import annotations

from pathlib import Path

import fakeredis
from flask.testing import FlaskClient

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
