"""A job runs on the version it was submitted with, whatever the default is by the time it runs."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_breast_cancer

from onnxq.jobs.record import JobStatus
from onnxq.jobs.store import JobStore
from onnxq.models.repository import ModelRepository
from onnxq.registry.demo import DEMO_MODEL_NAME
from onnxq.telemetry.prediction_log import PredictionLog
from tests.support.jobs import JobBroker
from tests.support.prediction_log import prediction_lines
from tests.worker.test_jobs import run


@pytest.fixture
def repository(two_versions: ModelRepository) -> ModelRepository:
    return two_versions


def test_a_job_submitted_on_version_1_finishes_on_it_after_version_2_is_promoted(
    repository: ModelRepository, job_store: JobStore, prediction_log: PredictionLog
) -> None:
    instances = load_breast_cancer().data[:5].tolist()
    repository.set_default(DEMO_MODEL_NAME, 1)
    jobs = JobBroker.create(job_store, repository)
    # Submitted while version 1 was the default: the gateway resolved and sent version 1.
    submitted = jobs.submit(instances, DEMO_MODEL_NAME, version=1)
    ModelRepository(repository.root).set_default(DEMO_MODEL_NAME, 2)  # promoted meanwhile

    job = run(repository, job_store, prediction_log, jobs.take_one(submitted.job_id))

    assert repository.default_version(DEMO_MODEL_NAME) == 2
    assert job is not None and job.status is JobStatus.SUCCEEDED
    assert job_store.get(submitted.job_id).result["version"] == 1
    assert {line["version"] for line in prediction_lines(prediction_log.directory)} == {1}
