"""Fixtures for the worker unit tests: a fakeredis job store and a prediction log."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import pytest

from onnxq.jobs.store import JobStore
from onnxq.telemetry.prediction_log import PredictionLog


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def job_store(redis_client: fakeredis.FakeRedis) -> JobStore:
    return JobStore(redis_client, ttl_seconds=3600)


@pytest.fixture
def prediction_log(tmp_path: Path) -> PredictionLog:
    return PredictionLog(tmp_path / "predictions")
