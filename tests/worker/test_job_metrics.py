"""JobRunner, fed the gateway's messages, moves the worker's metrics: outcomes, queue wait, batches,
rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from prometheus_client import REGISTRY

from onnxq.jobs import queue as queue_module
from onnxq.jobs.record import JobStatus
from onnxq.jobs.store import JobStore
from onnxq.models.repository import ModelRepository
from onnxq.registry.demo import DEMO_MODEL_NAME
from onnxq.telemetry.prediction_log import PredictionLog
from tests.support.jobs import JobBroker
from worker.runner import JobRunner


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_micro_batch_of_jobs_moves_outcome_wait_batch_and_row_metrics(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [[0.5] * 30, [1.5] * 30]
    with monkeypatch.context() as clock:  # submitted 7 s before a worker takes them
        clock.setattr(queue_module, "utc_now", lambda: datetime.now(UTC) - timedelta(seconds=7))
        for _ in range(3):
            jobs.submit(rows, DEMO_MODEL_NAME)
    model, job = {"model": DEMO_MODEL_NAME}, {"model": DEMO_MODEL_NAME, "source": "job"}
    before = {
        "succeeded": value("onnxq_jobs_succeeded_total", **model),
        "waits": value("onnxq_job_queue_wait_seconds_count", **model),
        "waited_under_5s": value("onnxq_job_queue_wait_seconds_bucket", **model, le="5.0"),
        "rows": value("onnxq_rows_predicted_total", **job),
        "runs": value("onnxq_inference_duration_seconds_count", **job),
        "batches_of_3": value("onnxq_microbatch_jobs_bucket", le="4.0")
        - value("onnxq_microbatch_jobs_bucket", le="2.0"),
    }

    runner = JobRunner(demo_repository, job_store, prediction_log)
    outcomes = runner.run(jobs.take())

    assert len(outcomes) == 3

    assert all(job is not None and job.status is JobStatus.SUCCEEDED for job in outcomes.values())
    assert value("onnxq_jobs_succeeded_total", model=DEMO_MODEL_NAME) == before["succeeded"] + 3
    assert value("onnxq_job_queue_wait_seconds_count", model=DEMO_MODEL_NAME) == before["waits"] + 3
    # Each waited ~7 s: none of them lands at or under the 5 s bucket.
    assert (
        value("onnxq_job_queue_wait_seconds_bucket", model=DEMO_MODEL_NAME, le="5.0")
        == (before["waited_under_5s"])
    )
    assert value("onnxq_rows_predicted_total", model=DEMO_MODEL_NAME, source="job") == (
        before["rows"] + 6
    )
    # Three jobs of one model: one session.run.
    runs = value("onnxq_inference_duration_seconds_count", model=DEMO_MODEL_NAME, source="job")
    assert runs == before["runs"] + 1
    batches_of_3 = value("onnxq_microbatch_jobs_bucket", le="4.0") - value(
        "onnxq_microbatch_jobs_bucket", le="2.0"
    )
    assert batches_of_3 == before["batches_of_3"] + 1


def test_a_failed_job_is_counted_with_its_error_type(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
) -> None:
    job = jobs.submit_matrix(np.full((1, 30), 0.5, dtype=np.float32), "no-such-model")
    before = value("onnxq_jobs_failed_total", model="no-such-model", error_type="model_not_found")

    runner = JobRunner(demo_repository, job_store, prediction_log)
    outcome = runner.run(jobs.take())[job.job_id]

    assert outcome is not None and outcome.status is JobStatus.FAILED
    after = value("onnxq_jobs_failed_total", model="no-such-model", error_type="model_not_found")
    assert after == before + 1
