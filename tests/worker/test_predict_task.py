"""The predict task as a Celery worker runs it: the gateway's message, decoded off the broker,
handed to the registered task (worker/app.py), which takes waiting batch-mates off the queue."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from celery import Celery
from sklearn.datasets import load_breast_cancer

from onnxq.broker.celery_app import CALLBACK_TASK, callback_queue
from onnxq.jobs.queue import JobQueue
from onnxq.jobs.record import JobStatus
from onnxq.jobs.store import JobStore
from onnxq.models.inputs import rows_to_matrix
from onnxq.models.repository import ModelRepository
from onnxq.registry.demo import DEMO_MODEL_NAME
from onnxq.settings import Settings
from tests.support.broker import in_memory_celery
from tests.support.jobs import (
    execute_next_message,
    in_memory_worker_app,
    private_queue_name,
    run_next_message,
    take_messages,
)
from tests.support.prediction_log import prediction_lines
from worker.batching import QueueDrain
from worker.job_stream import run_predict
from worker.runner import JobMessage

Rows = list[list[float]]


@pytest.fixture(scope="module")
def data() -> Rows:
    """Rows exactly as a client would send them: the data set's own decimals."""
    return load_breast_cancer().data[:40].tolist()  # type: ignore[no-any-return]


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"queue_name": private_queue_name()})


@pytest.fixture
def worker(
    worker_settings: Settings, redis_client: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> Celery:
    """The worker's app; its runtime starts on the first task, with this fakeredis as Redis."""
    monkeypatch.setattr("worker.runtime.connect_redis", lambda url, **_: redis_client)
    return in_memory_worker_app(worker_settings)


@pytest.fixture
def gateway(worker_settings: Settings, job_store: JobStore) -> JobQueue:
    """The gateway's end of the same in-memory broker and Redis."""
    return JobQueue(in_memory_celery(worker_settings), job_store)


def submit(gateway: JobQueue, repository: ModelRepository, rows: Rows, **fields: Any) -> str:
    """Submit as the gateway's route does: rows checked against the manifest, then queued."""
    matrix = rows_to_matrix(rows, repository.manifest(DEMO_MODEL_NAME, 1))
    return gateway.submit(model=DEMO_MODEL_NAME, version=1, matrix=matrix, **fields).job.job_id


def test_a_submitted_job_runs_when_its_message_reaches_the_predict_task(
    worker: Celery,
    gateway: JobQueue,
    demo_repository: ModelRepository,
    job_store: JobStore,
    worker_settings: Settings,
    data: Rows,
) -> None:
    job_id = submit(gateway, demo_repository, data[:3], request_id="req-task")

    returned = run_next_message(worker, worker_settings.queue_name)

    assert returned == "succeeded"
    job = job_store.get(job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
    expected = demo_repository.get(DEMO_MODEL_NAME, 1).predict(
        rows_to_matrix(data[:3], demo_repository.manifest(DEMO_MODEL_NAME, 1))
    )
    assert job.result is not None
    assert (job.result["labels"], job.result["probabilities"]) == (
        expected.labels,
        expected.probabilities,
    )
    lines = prediction_lines(worker_settings.prediction_log_dir)
    assert [(line["job_id"], line["request_id"]) for line in lines] == [(job_id, "req-task")] * 3
    assert [line["features"] for line in lines] == data[:3]
    assert take_messages(worker, worker_settings.queue_name) == []  # acknowledged


def test_the_predict_task_takes_the_waiting_jobs_off_the_queue_and_runs_them_together(
    worker: Celery,
    gateway: JobQueue,
    demo_repository: ModelRepository,
    job_store: JobStore,
    worker_settings: Settings,
    data: Rows,
) -> None:
    ids = [submit(gateway, demo_repository, data[n : n + 2]) for n in range(0, 10, 2)]

    assert run_next_message(worker, worker_settings.queue_name) == "succeeded"

    # One task ran all five: the four batch-mates were taken and acknowledged by it.
    assert {job_store.get(job_id).status for job_id in ids} == {JobStatus.SUCCEEDED}
    assert take_messages(worker, worker_settings.queue_name) == []
    model = demo_repository.get(DEMO_MODEL_NAME, 1)
    manifest = demo_repository.manifest(DEMO_MODEL_NAME, 1)
    for n, job_id in zip(range(0, 10, 2), ids, strict=True):
        alone = model.predict(rows_to_matrix(data[n : n + 2], manifest))
        assert job_store.get(job_id).result["probabilities"] == alone.probabilities


@pytest.mark.parametrize("notify", ["onnxq:waiters:gateway-1", None])
def test_the_task_knows_from_its_message_headers_whether_a_client_waits_for_its_job(
    worker: Celery,
    gateway: JobQueue,
    demo_repository: ModelRepository,
    worker_settings: Settings,
    data: Rows,
    monkeypatch: pytest.MonkeyPatch,
    notify: str | None,
) -> None:
    """A submit with `Prefer: wait` names its process's channel (`notify`): the message says so
    in a header, which reaches the task's request as Celery runs it, and the batch's wait."""
    firsts: list[JobMessage] = []
    takes: list[bool] = []
    take = QueueDrain.take

    def recording(first: JobMessage, *args: Any, **kwargs: Any) -> Any:
        firsts.append(first)
        return run_predict(first, *args, **kwargs)

    def take_recording(self: QueueDrain, *args: Any, awaited: bool = False, **kw: Any) -> Any:
        takes.append(awaited)
        return take(self, *args, awaited=awaited, **kw)

    monkeypatch.setattr("worker.app.run_predict", recording)
    monkeypatch.setattr(QueueDrain, "take", take_recording)
    job_id = submit(gateway, demo_repository, data[:1], notify=notify)

    assert execute_next_message(worker, worker_settings.queue_name) == "succeeded"

    assert [(m.job_id, m.awaited) for m in firsts] == [(job_id, notify is not None)]
    assert takes[0] is (notify is not None)  # the batch's first take


def test_a_job_cancelled_while_queued_is_skipped_by_the_task(
    worker: Celery,
    gateway: JobQueue,
    demo_repository: ModelRepository,
    job_store: JobStore,
    worker_settings: Settings,
    data: Rows,
) -> None:
    job_id = submit(gateway, demo_repository, data[:2])
    cancelled = gateway.cancel(job_id)

    assert run_next_message(worker, worker_settings.queue_name) == "cancelled"

    assert job_store.get(job_id) == cancelled
    assert prediction_lines(worker_settings.prediction_log_dir) == []


def test_the_task_queues_the_callback_of_a_job_it_ended(
    worker: Celery,
    gateway: JobQueue,
    demo_repository: ModelRepository,
    worker_settings: Settings,
    data: Rows,
) -> None:
    job_id = submit(gateway, demo_repository, data[:2], callback_url="http://hooks.example/hook")
    without = submit(gateway, demo_repository, data[2:4])

    run_next_message(worker, worker_settings.queue_name)

    with worker.connection_for_read() as connection:
        callbacks = connection.SimpleQueue(callback_queue(worker_settings))
        message = callbacks.get(timeout=1)
        message.ack()
        assert callbacks.qsize() == 0  # none for the job without a callback_url
        callbacks.close()
    assert message.headers["task"] == CALLBACK_TASK
    assert message.payload[1] == {"job_id": job_id} != {"job_id": without}
