"""A job runs on the version it was submitted with, whatever the default is by the time it runs."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_breast_cancer

from onnxq.jobs.store import JobStatus, JobStore
from onnxq.models.repository import ModelRepository
from onnxq.registry.demo import DEMO_MODEL_NAME
from onnxq.telemetry.prediction_log import PredictionLog
from tests.worker.test_jobs import JOB_ID, log_lines, queued, run


@pytest.fixture
def repository(two_versions: ModelRepository) -> ModelRepository:
    return two_versions


def test_a_job_submitted_on_version_1_finishes_on_it_after_version_2_is_promoted(
    repository: ModelRepository, job_store: JobStore, prediction_log: PredictionLog
) -> None:
    instances = load_breast_cancer().data[:5].tolist()
    repository.set_default(DEMO_MODEL_NAME, 1)
    queued(job_store, len(instances))  # submitted while version 1 was the default
    ModelRepository(repository.root).set_default(DEMO_MODEL_NAME, 2)  # promoted meanwhile

    job = run(repository, job_store, prediction_log, instances, version=1)

    assert repository.default_version(DEMO_MODEL_NAME) == 2
    assert job is not None and job.status is JobStatus.SUCCEEDED
    assert job_store.get(JOB_ID).result["version"] == 1
    assert {line["version"] for line in log_lines(prediction_log)} == {1}
