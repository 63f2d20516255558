"""JobRunner on one job, fed the message the gateway sends: outcomes land in the job store and the
prediction log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fakeredis
import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_breast_cancer

from onnxq.errors import QueueUnavailable
from onnxq.jobs import keys
from onnxq.jobs.record import Job, JobStatus
from onnxq.jobs.store import JobStore
from onnxq.models.manifest import MODEL_FILE
from onnxq.models.repository import ModelRepository
from onnxq.registry.demo import DEMO_MODEL_NAME
from onnxq.telemetry.prediction_log import PredictionLog
from tests.support.jobs import JobBroker
from tests.support.prediction_log import prediction_lines
from worker.runner import JobMessage, JobRunner


@pytest.fixture(scope="module")
def instances() -> list[list[float]]:
    """Rows exactly as a client would send them: the data set's own decimals."""
    return load_breast_cancer().data[:25].tolist()


def submitted(jobs: JobBroker, instances: list[list[float]], version: int = 1) -> JobMessage:
    """Submit the rows as the gateway does; return the message as a worker receives it."""
    job = jobs.submit(instances, DEMO_MODEL_NAME, version, request_id="req-7")
    return jobs.take_one(job.job_id)


def run(
    repository: ModelRepository, store: JobStore, log: PredictionLog, message: JobMessage
) -> Job | None:
    """What the predict task does with one message (without batch-mates)."""
    return JobRunner(repository, store, log).run([message])[message.job_id]


def test_a_successful_job_stores_the_onnxruntime_predictions(
    demo_repository: ModelRepository,
    demo_model_dir: Path,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    instances: list[list[float]],
) -> None:
    message = submitted(jobs, instances)

    returned = run(demo_repository, job_store, prediction_log, message)

    stored = job_store.get(message.job_id)
    assert returned == stored
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.started_at is not None
    assert stored.finished_at is not None
    assert stored.result is not None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the worker's sessions: same summation order
    session = ort.InferenceSession(
        str(demo_model_dir / DEMO_MODEL_NAME / "1" / MODEL_FILE),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    labels, probabilities = session.run(
        ["label", "probabilities"], {"input": np.array(instances, dtype=np.float32)}
    )
    assert stored.result["model"] == DEMO_MODEL_NAME
    assert stored.result["version"] == 1
    assert stored.result["classes"] == [0, 1]
    assert stored.result["labels"] == labels.tolist()
    returned_probabilities = np.array(stored.result["probabilities"], dtype=np.float32)
    assert returned_probabilities.tobytes() == probabilities.tobytes()


def test_a_successful_job_logs_one_line_per_row_with_its_job_id(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    instances: list[list[float]],
) -> None:
    message = submitted(jobs, instances)

    run(demo_repository, job_store, prediction_log, message)

    lines = prediction_lines(prediction_log.directory)
    result = job_store.get(message.job_id).result
    assert result is not None
    assert len(lines) == len(instances)
    assert [line["row"] for line in lines] == list(range(len(instances)))
    assert {line["job_id"] for line in lines} == {message.job_id}
    assert {line["request_id"] for line in lines} == {"req-7"}
    assert {line["source"] for line in lines} == {"job"}
    assert {(line["model"], line["version"]) for line in lines} == {(DEMO_MODEL_NAME, 1)}
    # Features are logged as sent (17.99), not as their float32 cast (17.989999771118164).
    assert [line["features"] for line in lines] == instances
    assert [line["label"] for line in lines] == result["labels"]
    assert [line["probabilities"] for line in lines] == result["probabilities"]


def test_rows_of_another_width_than_the_models_fail_the_job_as_invalid_input_without_logging(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    instances: list[list[float]],
) -> None:
    # The gateway validates rows against the version it resolves (a 422 otherwise); the
    # worker still checks the stored matrix fits the model before running it.
    narrow = np.array(instances, dtype=np.float32)[:, :29]
    job = jobs.submit_matrix(narrow, DEMO_MODEL_NAME, request_id="req-7")
    message = jobs.take_one(job.job_id)
    assert message.width == 29

    returned = run(demo_repository, job_store, prediction_log, message)

    stored = job_store.get(job.job_id)
    assert returned == stored
    assert stored.status is JobStatus.FAILED
    assert stored.error is not None
    assert stored.error.type == "invalid_input"
    assert stored.result is None
    assert prediction_lines(prediction_log.directory) == []


@pytest.mark.parametrize(
    ("model", "version"), [("no-such-model", 1), (DEMO_MODEL_NAME, 9)], ids=["name", "version"]
)
def test_an_unknown_model_fails_the_job_as_model_not_found(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    instances: list[list[float]],
    jobs: JobBroker,
    model: str,
    version: int,
) -> None:
    # Submitted while the model (or version) existed, gone by the time a worker runs it.
    matrix = np.array(instances, dtype=np.float32)
    job = jobs.submit_matrix(matrix, model, version, request_id="req-7")

    run(demo_repository, job_store, prediction_log, jobs.take_one(job.job_id))

    stored = job_store.get(job.job_id)
    assert stored.status is JobStatus.FAILED
    assert stored.error is not None
    assert stored.error.type == "model_not_found"
    assert model in stored.error.message
    assert prediction_lines(prediction_log.directory) == []


def test_an_unexpected_fault_fails_the_job_with_the_exception_type(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    instances: list[list[float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = submitted(jobs, instances)

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("session crashed")

    monkeypatch.setattr(demo_repository, "get", explode)

    run(demo_repository, job_store, prediction_log, message)

    stored = job_store.get(message.job_id)
    assert stored.status is JobStatus.FAILED
    assert stored.error is not None
    assert (stored.error.type, stored.error.message) == ("RuntimeError", "session crashed")


def test_a_job_store_outage_is_raised_for_the_task_layer_to_retry(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    instances: list[list[float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unavailable(finished: list[Any], acknowledge: Any = None) -> set[str]:
        raise QueueUnavailable("the job store is unreachable")

    monkeypatch.setattr(job_store, "store_many", unavailable)  # down when the outcome is stored
    message = submitted(jobs, instances)

    with pytest.raises(QueueUnavailable):
        run(demo_repository, job_store, prediction_log, message)

    assert job_store.get(message.job_id).status is JobStatus.RUNNING


def test_a_job_whose_record_is_gone_returns_none_and_does_nothing(
    demo_repository: ModelRepository,
    job_store: JobStore,
    redis_client: fakeredis.FakeRedis,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    instances: list[list[float]],
) -> None:
    message = submitted(jobs, instances)
    # The record and its rows expired while the message waited (the tombstone outlives them).
    redis_client.delete(keys.job(message.job_id), keys.rows(message.job_id))
    before = {key: redis_client.dump(key) for key in redis_client.keys("*")}

    returned = run(demo_repository, job_store, prediction_log, message)

    assert returned is None
    assert {key: redis_client.dump(key) for key in redis_client.keys("*")} == before
    assert prediction_lines(prediction_log.directory) == []


def test_a_job_whose_record_vanishes_while_running_returns_none(
    demo_repository: ModelRepository,
    job_store: JobStore,
    redis_client: fakeredis.FakeRedis,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    instances: list[list[float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = submitted(jobs, instances)
    store_many = job_store.store_many

    def expire_then_store(finished: list[Any], acknowledge: Any = None) -> set[str]:
        redis_client.delete(keys.job(message.job_id))  # the TTL ends mid-job
        return store_many(finished, acknowledge)

    monkeypatch.setattr(job_store, "store_many", expire_then_store)

    assert run(demo_repository, job_store, prediction_log, message) is None
    assert not redis_client.exists(keys.job(message.job_id))  # not written back
