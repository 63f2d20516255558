"""Fixtures for the worker unit tests: a fakeredis job store, a prediction log, and a broker that
carries jobs from the gateway's submit code to the worker's receiving code."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import pytest

from onnxq.jobs.store import JobStore
from onnxq.models.repository import ModelRepository
from onnxq.telemetry.prediction_log import PredictionLog
from tests.support.jobs import JobBroker


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def job_store(redis_client: fakeredis.FakeRedis) -> JobStore:
    return JobStore(redis_client, ttl_seconds=3600)


@pytest.fixture
def prediction_log(tmp_path: Path) -> PredictionLog:
    return PredictionLog(tmp_path / "predictions")


@pytest.fixture
def jobs(job_store: JobStore, demo_repository: ModelRepository) -> JobBroker:
    """Submit as the gateway does, take messages as a worker does (tests/support/jobs.py)."""
    return JobBroker.create(job_store, demo_repository)
