"""The Flask app built from test config: fakeredis job store, in-memory Celery broker."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway import create_app
from gateway.services import Services
from onnxq.settings import Settings
from tests.support.broker import in_memory_celery


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def app(settings: Settings, redis_client: fakeredis.FakeRedis) -> Flask:
    celery = in_memory_celery(settings)
    return create_app(
        {"TESTING": True, "SETTINGS": settings, "REDIS_CLIENT": redis_client, "CELERY_APP": celery}
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def services(app: Flask) -> Services:
    return app.extensions["onnxq"]


@pytest.fixture
def rows(services: Services, demo_model_name: str) -> list[list[float]]:
    """Three valid rows of the right width."""
    width = len(services.repository.manifest(demo_model_name).features)
    return [[float(i + j) / 10 for j in range(width)] for i in range(3)]


@pytest.fixture
def kinds_app(settings: Settings, kinds_model_dir: Path) -> Flask:
    """The app over a repository with a model of every kind (tests/support/model_kinds.py)."""
    settings = settings.model_copy(update={"model_dir": kinds_model_dir})
    return create_app(
        {
            "TESTING": True,
            "SETTINGS": settings,
            "REDIS_CLIENT": fakeredis.FakeRedis(),
            "CELERY_APP": in_memory_celery(settings),
        }
    )


@pytest.fixture
def kinds_client(kinds_app: Flask) -> FlaskClient:
    return kinds_app.test_client()


@pytest.fixture
def names(services: Services, demo_model_name: str) -> list[str]:
    return services.repository.manifest(demo_model_name).feature_names


@pytest.fixture
def matrix(names: list[str]) -> np.ndarray:
    rng = np.random.default_rng(4)
    return rng.uniform(1, 100, size=(25, len(names))).astype(np.float32)
