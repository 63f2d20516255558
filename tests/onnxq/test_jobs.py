"""Job records in Redis (JobStore) and the submit path that writes them (JobQueue)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
import redis
from kombu.exceptions import OperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry

from onnxq.broker.celery_app import PREDICT_TASK
from onnxq.errors import JobNotFound, QueueUnavailable
from onnxq.jobs.queue import JobQueue
from onnxq.jobs.store import Job, JobStatus, JobStore
from onnxq.settings import Settings
from tests.conftest import in_memory_celery

TTL = 600


def new_job(job_id: str = "job-1", **changes: Any) -> Job:
    fields: dict[str, Any] = {
        "job_id": job_id,
        "status": JobStatus.QUEUED,
        "model": "breast-cancer",
        "version": 1,
        "rows": 2,
        "request_id": "req-1",
        "submitted_at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    }
    return Job(**(fields | changes))


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server)


@pytest.fixture
def store(client: fakeredis.FakeRedis) -> JobStore:
    return JobStore(client, ttl_seconds=TTL)


@pytest.fixture
def unreachable_store() -> JobStore:
    # Nothing listens on port 1; no retries, so the refusal is immediate.
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    return JobStore(client, ttl_seconds=TTL)


def test_a_created_job_reads_back_unchanged(store: JobStore) -> None:
    job = new_job()

    store.create(job)

    assert store.get("job-1") == job


def test_a_created_job_expires_after_the_ttl(store: JobStore, client: fakeredis.FakeRedis) -> None:
    store.create(new_job())

    assert 0 < client.ttl("onnxq:job:job-1") <= TTL


def test_creating_the_same_job_twice_is_refused_and_keeps_the_first(store: JobStore) -> None:
    store.create(new_job(rows=2))

    with pytest.raises(ValueError, match="already exists"):
        store.create(new_job(rows=99))

    assert store.get("job-1").rows == 2


def test_an_unknown_job_id_is_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFound) as caught:
        store.get("missing")

    assert caught.value.job_id == "missing"
    assert caught.value.status_code == 404


def test_updating_an_unknown_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        store.mark_running("missing")


def test_mark_running_records_the_start_time(store: JobStore) -> None:
    store.create(new_job())

    returned = store.mark_running("job-1")

    stored = store.get("job-1")
    assert stored == returned
    assert stored.status is JobStatus.RUNNING
    assert stored.started_at is not None
    assert stored.finished_at is None


def test_mark_succeeded_stores_the_result(store: JobStore) -> None:
    store.create(new_job())
    store.mark_running("job-1")
    result = {"labels": [0, 1], "probabilities": [[0.9, 0.1], [0.2, 0.8]], "classes": [0, 1]}

    store.mark_succeeded("job-1", result)

    stored = store.get("job-1")
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.result == result
    assert stored.error is None
    assert stored.started_at is not None
    assert stored.finished_at is not None
    assert stored.finished_at >= stored.started_at


def test_mark_failed_stores_the_error(store: JobStore) -> None:
    store.create(new_job())

    store.mark_failed("job-1", "invalid_input", "row 3 is too short")

    stored = store.get("job-1")
    assert stored.status is JobStatus.FAILED
    assert stored.error is not None
    assert (stored.error.type, stored.error.message) == ("invalid_input", "row 3 is too short")
    assert stored.result is None


def test_every_update_renews_the_ttl(store: JobStore, client: fakeredis.FakeRedis) -> None:
    store.create(new_job())
    client.expire("onnxq:job:job-1", 5)

    store.mark_running("job-1")

    assert 5 < client.ttl("onnxq:job:job-1") <= TTL


def test_an_update_retries_when_the_record_changes_underneath_it(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    store.create(new_job(rows=2))
    seen_rows = []

    def change(job: Job) -> Job:
        seen_rows.append(job.rows)
        if len(seen_rows) == 1:  # another writer gets in between WATCH and EXEC
            client.set("onnxq:job:job-1", job.model_copy(update={"rows": 7}).model_dump_json())
        return job.model_copy(update={"status": JobStatus.RUNNING})

    store.update("job-1", change)

    assert seen_rows == [2, 7]
    stored = store.get("job-1")
    assert (stored.rows, stored.status) == (7, JobStatus.RUNNING)


def test_the_public_document_carries_the_request_id_and_leaves_out_empty_fields() -> None:
    document = new_job().public()

    assert document == {
        "job_id": "job-1",
        "status": "queued",
        "model": "breast-cancer",
        "version": 1,
        "rows": 2,
        "request_id": "req-1",
        "submitted_at": "2024-05-01T12:00:00Z",
    }


@pytest.mark.parametrize(
    "operation",
    [
        lambda store: store.create(new_job()),
        lambda store: store.get("job-1"),
        lambda store: store.delete("job-1"),
        lambda store: store.mark_running("job-1"),
    ],
    ids=["create", "get", "delete", "update"],
)
def test_an_unreachable_redis_is_reported_as_queue_unavailable(
    unreachable_store: JobStore, operation: Any
) -> None:
    with pytest.raises(QueueUnavailable) as caught:
        operation(unreachable_store)

    assert caught.value.status_code == 503
    assert isinstance(caught.value.__cause__, redis.ConnectionError)


@pytest.fixture
def queue_name() -> str:
    # kombu's memory transport is shared by the whole process: a private queue per test.
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def celery_app(queue_name: str):
    return in_memory_celery(
        Settings(_env_file=None, redis_url="redis://127.0.0.1:1/0", queue_name=queue_name)
    )


def test_submit_records_a_queued_job_and_sends_its_task(
    celery_app, store: JobStore, queue_name: str
) -> None:
    queue = JobQueue(celery_app, store)

    job = queue.submit(
        model="breast-cancer", version=1, instances=[[1.0, 2.0], [3.0, 4.0]], request_id="r-9"
    ).job

    stored = store.get(job.job_id)
    assert stored == job
    assert stored.status is JobStatus.QUEUED
    assert (stored.model, stored.version, stored.rows, stored.request_id) == (
        "breast-cancer",
        1,
        2,
        "r-9",
    )
    with celery_app.connection_for_read() as connection:
        simple = connection.SimpleQueue(queue_name)
        message = simple.get(timeout=1)
        message.ack()
        simple.close()
    assert message.headers["task"] == PREDICT_TASK
    assert message.headers["id"] == job.job_id
    _, kwargs, _ = message.payload
    assert kwargs == {
        "job_id": job.job_id,
        "model": "breast-cancer",
        "version": 1,
        "instances": [[1.0, 2.0], [3.0, 4.0]],
        "request_id": "r-9",
    }


def test_each_submission_gets_its_own_job_id(celery_app, store: JobStore) -> None:
    queue = JobQueue(celery_app, store)

    ids = {queue.submit(model="m", version=1, instances=[[1.0]]).job.job_id for _ in range(3)}

    assert len(ids) == 3


@pytest.mark.parametrize(
    "failure",
    [OperationalError("broker is down"), ConnectionRefusedError(111, "refused")],
    ids=["kombu-operational-error", "os-error"],
)
def test_a_broker_failure_deletes_the_job_record_and_reports_queue_unavailable(
    celery_app,
    store: JobStore,
    client: fakeredis.FakeRedis,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
) -> None:
    sent = []

    def refuse(name: str, **options: Any) -> None:
        sent.append(options["task_id"])
        assert client.exists(store.key(options["task_id"]))  # recorded before sending
        raise failure

    monkeypatch.setattr(celery_app, "send_task", refuse)

    with pytest.raises(QueueUnavailable) as caught:
        JobQueue(celery_app, store).submit(model="m", version=1, instances=[[1.0]])

    assert caught.value.__cause__ is failure
    assert len(sent) == 1
    assert client.keys("onnxq:job:*") == []


def test_a_broker_failure_is_still_queue_unavailable_when_the_cleanup_fails_too(
    celery_app,
    store: JobStore,
    server: fakeredis.FakeServer,
    client: fakeredis.FakeRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failure = OperationalError("broker is down")

    def refuse(name: str, **options: Any) -> None:
        server.connected = False  # Redis goes away with the broker
        raise failure

    monkeypatch.setattr(celery_app, "send_task", refuse)

    with pytest.raises(QueueUnavailable) as caught:
        JobQueue(celery_app, store).submit(model="m", version=1, instances=[[1.0]])

    assert caught.value.__cause__ is failure
    server.connected = True
    # The delete could not happen: the orphan record remains until its TTL ends.
    [key] = client.keys("onnxq:job:*")
    assert 0 < client.ttl(key) <= TTL


def test_no_task_is_sent_when_the_job_cannot_be_recorded(
    celery_app, unreachable_store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = []
    monkeypatch.setattr(celery_app, "send_task", lambda *args, **kwargs: sent.append(kwargs))

    with pytest.raises(QueueUnavailable):
        JobQueue(celery_app, unreachable_store).submit(model="m", version=1, instances=[[1.0]])

    assert sent == []


def test_storing_no_jobs_is_a_no_op(store: JobStore) -> None:
    assert store.store_many([]) == set()
