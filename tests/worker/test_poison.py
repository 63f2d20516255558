"""Deliveries, poison jobs and micro-batches in JobRunner, against fakeredis and the demo model.

Every job is submitted with the gateway's code and reaches the runner as the message a worker
takes off the queue (tests/support/jobs.py). An earlier delivery whose worker died is played
by claiming the job, as that delivery did, without ever storing an outcome.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from onnxq.jobs import keys, lifecycle
from onnxq.jobs.lifecycle import ClaimState
from onnxq.jobs.record import Job, JobStatus
from onnxq.jobs.store import JobStore
from onnxq.models.repository import ModelRepository
from onnxq.models.session import OnnxModel, PredictionResult
from onnxq.registry.demo import DEMO_MODEL_NAME
from onnxq.telemetry.prediction_log import PredictionLog
from tests.support.jobs import JobBroker
from tests.support.prediction_log import prediction_lines
from worker.runner import JobMessage, JobRunner

MAX_ATTEMPTS = 3

Rows = list[list[float]]


@pytest.fixture(scope="module")
def data() -> Rows:
    """Rows exactly as a client would send them: the data set's own decimals."""
    return load_breast_cancer().data.tolist()  # type: ignore[no-any-return]


def submitted(jobs: JobBroker, rows: Rows, *, lost_deliveries: int = 0) -> JobMessage:
    """Submit the rows as the gateway does; return their message as a worker receives it.

    `lost_deliveries`: that many earlier deliveries of this message claimed the job and
    died with their workers (the job is left `running`, its attempts counted).
    """
    job = jobs.submit(rows, DEMO_MODEL_NAME)
    message = jobs.take_one(job.job_id)
    for _ in range(lost_deliveries):
        claim = jobs.store.claim_many([job.job_id], MAX_ATTEMPTS)[job.job_id]
        assert claim.state is ClaimState.CLAIMED
    return message


class Ended:
    """An on_end callback that remembers every job it was called with."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def __call__(self, job: Job) -> None:
        self.jobs.append(job)


def runner(
    repository: ModelRepository,
    store: JobStore,
    log: PredictionLog,
    on_end: Ended | None = None,
    chunk_rows: int = 10_000,
) -> JobRunner:
    return JobRunner(
        repository, store, log, max_attempts=MAX_ATTEMPTS, chunk_rows=chunk_rows, on_end=on_end
    )


class PredictSpy:
    """Wraps one loaded model's predict and records the row count of every call."""

    def __init__(self, model: OnnxModel, monkeypatch: pytest.MonkeyPatch):
        self.calls: list[int] = []
        self._predict = model.predict
        monkeypatch.setattr(model, "predict", self)

    def __call__(self, rows: np.ndarray) -> PredictionResult:
        self.calls.append(len(rows))
        return self._predict(rows)


def alone(model: OnnxModel, rows: Rows) -> dict[str, Any]:
    """What predicting these rows by themselves gives, in the job result's shape."""
    return model.predict(np.array(rows, dtype=np.float32)).to_dict()


def result_of(job: Job | None) -> dict[str, Any]:
    assert job is not None
    assert job.result is not None
    return {key: job.result[key] for key in ("labels", "probabilities", "classes")}


def test_each_claim_of_a_job_counts_one_more_attempt(job_store: JobStore, jobs: JobBroker) -> None:
    identifier = submitted(jobs, [[0.5] * 30]).job_id

    first = job_store.claim_many([identifier], MAX_ATTEMPTS)[identifier]
    assert first.state is ClaimState.CLAIMED
    assert first.job is not None
    assert (first.job.status, first.job.attempts) == (JobStatus.RUNNING, 1)
    assert job_store.get(identifier).attempts == 1

    # The worker died: the message is delivered again and claimed again.
    second = job_store.claim_many([identifier], MAX_ATTEMPTS)[identifier]
    assert second.state is ClaimState.CLAIMED
    assert second.job is not None
    assert (second.job.status, second.job.attempts) == (JobStatus.RUNNING, 2)
    assert job_store.get(identifier).attempts == 2


def test_a_claim_at_max_attempts_fails_the_job_as_poison_instead_of_running_it(
    job_store: JobStore, jobs: JobBroker
) -> None:
    identifier = submitted(jobs, [[0.5] * 30], lost_deliveries=MAX_ATTEMPTS).job_id

    claim = job_store.claim_many([identifier], MAX_ATTEMPTS)[identifier]

    assert claim.state is ClaimState.POISONED
    stored = job_store.get(identifier)
    assert claim.job == stored
    assert stored.status is JobStatus.FAILED
    assert stored.attempts == MAX_ATTEMPTS  # not counted as one more delivery
    assert stored.error is not None
    assert stored.error.type == "poison_job"
    assert str(MAX_ATTEMPTS) in stored.error.message
    assert stored.finished_at is not None


def test_the_runner_reports_a_poison_job_once_as_failed_and_never_predicts_it(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    data: Rows,
) -> None:
    message = submitted(jobs, data[:2], lost_deliveries=MAX_ATTEMPTS)
    identifier = message.job_id
    ended = Ended()

    outcomes = runner(demo_repository, job_store, prediction_log, ended).run([message])

    stored = job_store.get(identifier)
    assert outcomes == {identifier: stored}
    assert stored.status is JobStatus.FAILED
    assert stored.error is not None
    assert stored.error.type == "poison_job"
    assert stored.result is None
    assert ended.jobs == [stored]
    assert prediction_lines(prediction_log.directory) == []


def test_a_poison_job_in_a_batch_does_not_stop_its_batch_mates(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    data: Rows,
) -> None:
    poison = submitted(jobs, data[:1], lost_deliveries=MAX_ATTEMPTS)
    healthy = submitted(jobs, data[1:2])
    ended = Ended()

    runner(demo_repository, job_store, prediction_log, ended).run([poison, healthy])

    assert job_store.get(poison.job_id).status is JobStatus.FAILED
    assert job_store.get(healthy.job_id).status is JobStatus.SUCCEEDED
    assert sorted(job.job_id for job in ended.jobs) == sorted([poison.job_id, healthy.job_id])
    logged = prediction_lines(prediction_log.directory)
    assert {line["job_id"] for line in logged} == {healthy.job_id}


def test_a_redelivered_running_job_is_run_again_and_succeeds(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    data: Rows,
) -> None:
    # Its first worker claimed it (attempts 1) and died before storing anything.
    message = submitted(jobs, data[:3], lost_deliveries=1)
    identifier = message.job_id
    ended = Ended()

    outcomes = runner(demo_repository, job_store, prediction_log, ended).run([message])

    stored = job_store.get(identifier)
    assert outcomes == {identifier: stored}
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.attempts == 2
    assert stored.error is None
    assert result_of(stored) == alone(demo_repository.get(DEMO_MODEL_NAME, 1), data[:3])
    assert ended.jobs == [stored]
    assert [line["row"] for line in prediction_lines(prediction_log.directory)] == [0, 1, 2]


def test_a_job_delivered_for_the_last_allowed_time_still_runs(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    data: Rows,
) -> None:
    message = submitted(jobs, data[:1], lost_deliveries=MAX_ATTEMPTS - 1)

    runner(demo_repository, job_store, prediction_log).run([message])

    stored = job_store.get(message.job_id)
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.attempts == MAX_ATTEMPTS


def end_as(status: JobStatus, message: JobMessage, jobs: JobBroker, run: JobRunner) -> None:
    """End the job the ways production does: a worker runs it, or fails it, or a client cancels."""
    if status is JobStatus.SUCCEEDED:
        run.run([message])
    elif status is JobStatus.FAILED:
        jobs.store.claim_many([message.job_id], MAX_ATTEMPTS)
        fail = partial(lifecycle.fail, error_type="RuntimeError", message="onnxruntime fell over")
        jobs.store.store_many([fail(jobs.store.get(message.job_id))])
    else:
        jobs.queue.cancel(message.job_id)
    assert jobs.store.get(message.job_id).status is status


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_a_duplicate_delivery_of_an_ended_job_is_skipped_unchanged(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    data: Rows,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    status: JobStatus,
) -> None:
    message = submitted(jobs, data[:1])
    end_as(status, message, jobs, runner(demo_repository, job_store, PredictionLog(tmp_path / "x")))
    before = job_store.get(message.job_id)
    spy = PredictSpy(demo_repository.get(DEMO_MODEL_NAME, 1), monkeypatch)
    ended = Ended()

    # The same message again (the worker that ran it died before acknowledging it).
    outcomes = runner(demo_repository, job_store, prediction_log, ended).run([message])

    assert outcomes == {message.job_id: before}
    assert job_store.get(message.job_id) == before
    assert ended.jobs == []
    assert spy.calls == []
    assert prediction_lines(prediction_log.directory) == []


def test_a_batch_of_ten_jobs_runs_through_one_predict_and_each_gets_its_own_rows(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    data: Rows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = demo_repository.get(DEMO_MODEL_NAME, 1)
    sizes = [1, 3, 1, 2, 5, 1, 4, 1, 2, 6]
    starts = [sum(sizes[:index]) * 7 for index in range(len(sizes))]  # spread over the data
    batch = [data[start : start + size] for start, size in zip(starts, sizes, strict=True)]
    expected = [alone(model, rows) for rows in batch]  # before the spy: calls not counted
    ids = [jobs.submit(rows, DEMO_MODEL_NAME).job_id for rows in batch]
    messages = jobs.take()  # as a worker's task plus its QueueDrain take them, in order
    assert [message.job_id for message in messages] == ids
    spy = PredictSpy(model, monkeypatch)
    ended = Ended()

    outcomes = runner(demo_repository, job_store, prediction_log, ended).run(messages)

    assert spy.calls == [sum(sizes)]
    for number, rows in enumerate(batch):
        stored = job_store.get(ids[number])
        assert outcomes[ids[number]] == stored
        assert stored.status is JobStatus.SUCCEEDED
        assert stored.rows == len(rows)
        assert result_of(stored) == expected[number]
    assert len(ended.jobs) == len(batch)
    lines = prediction_lines(prediction_log.directory)
    assert len(lines) == sum(sizes)
    for number, rows in enumerate(batch):
        mine = [line for line in lines if line["job_id"] == ids[number]]
        logged = np.array([line["features"] for line in mine], dtype=np.float32)
        assert logged.tobytes() == np.array(rows, dtype=np.float32).tobytes()
        assert [line["label"] for line in mine] == expected[number]["labels"]
        assert [line["probabilities"] for line in mine] == expected[number]["probabilities"]


def test_a_job_whose_rows_do_not_fit_the_model_fails_alone_while_its_batch_mates_share_one_predict(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    data: Rows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = demo_repository.get(DEMO_MODEL_NAME, 1)
    batch = [data[0:2], [row[:29] for row in data[2:4]], data[4:7], data[7:8]]
    ids = [
        jobs.submit_matrix(np.array(rows, dtype=np.float32), DEMO_MODEL_NAME).job_id
        for rows in batch
    ]
    spy = PredictSpy(model, monkeypatch)

    runner(demo_repository, job_store, prediction_log).run(jobs.take())

    bad = job_store.get(ids[1])
    assert bad.status is JobStatus.FAILED
    assert bad.error is not None
    assert bad.error.type == "invalid_input"
    assert bad.result is None
    assert "29 features" in bad.error.message
    assert spy.calls == [2 + 3 + 1]
    for number in (0, 2, 3):
        stored = job_store.get(ids[number])
        assert stored.status is JobStatus.SUCCEEDED
        assert result_of(stored) == alone(model, batch[number])
    assert ids[1] not in {line["job_id"] for line in prediction_lines(prediction_log.directory)}


def test_a_job_that_breaks_the_shared_run_fails_alone_and_its_batch_mates_are_rerun(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    data: Rows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = demo_repository.get(DEMO_MODEL_NAME, 1)
    poison_row = [123456.0] * 30  # valid input that the (faked) runtime chokes on
    batch = [data[0:2], [data[2], poison_row], data[4:7]]
    ids = [jobs.submit(rows, DEMO_MODEL_NAME).job_id for rows in batch]
    predict = model.predict
    calls: list[int] = []

    def fragile(rows: np.ndarray) -> PredictionResult:
        calls.append(len(rows))
        if (rows == np.float32(123456.0)).all(axis=1).any():
            raise RuntimeError("onnxruntime fell over")
        return predict(rows)

    monkeypatch.setattr(model, "predict", fragile)

    runner(demo_repository, job_store, prediction_log).run(jobs.take())

    assert calls == [7, 2, 2, 3]  # the shared run, then each job alone
    broken = job_store.get(ids[1])
    assert broken.status is JobStatus.FAILED
    assert broken.error is not None
    assert (broken.error.type, broken.error.message) == ("RuntimeError", "onnxruntime fell over")
    for number in (0, 2):
        stored = job_store.get(ids[number])
        assert stored.status is JobStatus.SUCCEEDED
        assert result_of(stored) == alone(model, batch[number])


def test_a_job_larger_than_chunk_rows_runs_in_chunks_with_the_same_results(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    data: Rows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = demo_repository.get(DEMO_MODEL_NAME, 1)
    whole = alone(model, data)
    message = submitted(jobs, data)
    identifier = message.job_id
    spy = PredictSpy(model, monkeypatch)

    runner(demo_repository, job_store, prediction_log, chunk_rows=100).run([message])

    assert len(data) == 569
    assert spy.calls == [100, 100, 100, 100, 100, 69]
    stored = job_store.get(identifier)
    assert stored.status is JobStatus.SUCCEEDED
    assert result_of(stored) == whole
    assert len(prediction_lines(prediction_log.directory)) == len(data)


def test_a_redelivered_job_whose_stored_rows_have_expired_ends_instead_of_staying_running(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    data: Rows,
) -> None:
    # Its first worker claimed it and died. Every claim rewrites the record with a fresh
    # TTL, but the rows beside it keep the TTL they got at submit: a job that waited long
    # in the queue can come back (after the visibility timeout) with its record alive
    # and its rows gone. Nobody else will ever end it.
    message = submitted(jobs, data[:2], lost_deliveries=1)
    identifier = message.job_id
    job_store.client.delete(keys.rows(identifier))
    ended = Ended()

    runner(demo_repository, job_store, prediction_log, ended).run([message])

    stored = job_store.get(identifier)
    assert stored.status.ended, f"left {stored.status.value} with attempts {stored.attempts}"
    assert stored.status is JobStatus.FAILED
    assert stored.error is not None
    assert stored.error.type == "inputs_missing"
    assert ended.jobs == [stored]


def test_a_duplicate_delivery_whose_job_ends_during_its_claim_leaves_the_job_to_its_finisher(
    demo_repository: ModelRepository,
    job_store: JobStore,
    prediction_log: PredictionLog,
    jobs: JobBroker,
    data: Rows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = submitted(jobs, data[:2], lost_deliveries=1)
    identifier = message.job_id
    finisher_result = {
        "model": DEMO_MODEL_NAME,
        "version": 1,
        "labels": [0, 0],
        "probabilities": [[1.0, 0.0], [1.0, 0.0]],
        "classes": [0, 1],
    }
    read = job_store.client.mget
    reads = []

    def another_worker_finishes_first(keys: list[str]) -> list[bytes | None]:
        # Between this delivery's read of the record (and rows) and its claim, the worker that
        # was running the job stores its outcome (which consumes the rows).
        values = read(keys)
        if not reads:
            job_store.store_many([lifecycle.succeed(job_store.get(identifier), finisher_result)])
        reads.append(values)
        return values

    monkeypatch.setattr(job_store.client, "mget", another_worker_finishes_first)
    ended = Ended()

    runner(demo_repository, job_store, prediction_log, ended).run([message])

    stored = job_store.get(identifier)
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.result == finisher_result
    assert ended.jobs == []
    assert prediction_lines(prediction_log.directory) == []
    assert len(reads) == 2  # the claim saw the record change and read it again
