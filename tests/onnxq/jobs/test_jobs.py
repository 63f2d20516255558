"""Job records in Redis (JobStore), their state changes (lifecycle), their Redis keys, and the
submit path that writes them (JobQueue)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

import fakeredis
import numpy as np
import pytest
import redis
from kombu.exceptions import OperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry

from onnxq.broker.celery_app import PREDICT_TASK, callback_queue
from onnxq.broker.task_message import QueuedMessage
from onnxq.errors import JobConflict, JobNotFound, QueueUnavailable
from onnxq.jobs import keys, lifecycle
from onnxq.jobs import queue as queue_module
from onnxq.jobs.lifecycle import ClaimState
from onnxq.jobs.queue import JobQueue, queue_callback
from onnxq.jobs.record import Job, JobStatus
from onnxq.jobs.store import JobStore
from onnxq.settings import Settings
from tests.support.broker import in_memory_celery
from tests.support.jobs import private_queue_name
from tests.support.records import queued_job as new_job

TTL = 600


NOW = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
ONE_ROW = np.ones((1, 1), dtype=np.float32)


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

    assert 0 < client.ttl(keys.job("job-1")) <= TTL


def test_creating_the_same_job_twice_is_refused_and_keeps_the_first(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    store.create(new_job(rows=2), rows=b"first")

    with pytest.raises(ValueError, match="already exists"):
        store.create(new_job(rows=99), rows=b"second", message=QueuedMessage("q", b"message"))

    assert store.get("job-1").rows == 2
    assert client.get(keys.rows("job-1")) == b"first"  # nothing of the second was written
    assert client.llen("q") == 0


def test_an_unknown_job_id_is_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFound) as caught:
        store.get("missing")

    assert caught.value.job_id == "missing"
    assert caught.value.status_code == 404


def test_updating_an_unknown_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        store.update("missing", lifecycle.cancel)


def test_a_claim_starts_a_queued_job_and_counts_one_delivery() -> None:
    claim = lifecycle.claim(new_job(), NOW, max_attempts=3)

    assert claim.state is ClaimState.CLAIMED
    assert claim.changed
    assert claim.job is not None
    assert (claim.job.status, claim.job.started_at, claim.job.attempts) == (
        JobStatus.RUNNING,
        NOW,
        1,
    )
    assert claim.job.finished_at is None


def test_a_claim_of_a_job_delivered_max_attempts_times_fails_it_as_poison() -> None:
    running = new_job(status=JobStatus.RUNNING, attempts=3)

    claim = lifecycle.claim(running, NOW, max_attempts=3)

    assert claim.state is ClaimState.POISONED
    assert claim.changed
    assert claim.job is not None
    assert (claim.job.status, claim.job.finished_at, claim.job.attempts) == (
        JobStatus.FAILED,
        NOW,
        3,
    )
    assert claim.job.error is not None
    assert claim.job.error.type == "poison_job"


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_a_claim_of_an_ended_job_leaves_it_unchanged(status: JobStatus) -> None:
    ended = new_job(status=status, attempts=1)

    claim = lifecycle.claim(ended, NOW, max_attempts=3)

    assert (claim.state, claim.job, claim.changed) == (ClaimState.ENDED, ended, False)


def test_a_claim_of_a_missing_record_is_missing() -> None:
    claim = lifecycle.claim(None, NOW, max_attempts=3)

    assert (claim.state, claim.job, claim.changed) == (ClaimState.MISSING, None, False)


def test_a_claimed_job_that_succeeds_stores_the_result(store: JobStore) -> None:
    store.create(new_job())
    store.claim_many(["job-1"], max_attempts=3)
    result = {"labels": [0, 1], "probabilities": [[0.9, 0.1], [0.2, 0.8]], "classes": [0, 1]}

    store.update("job-1", partial(lifecycle.succeed, result=result))

    stored = store.get("job-1")
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.result == result
    assert stored.error is None
    assert stored.started_at is not None
    assert stored.finished_at is not None
    assert stored.finished_at >= stored.started_at


def test_a_failed_job_stores_the_error(store: JobStore) -> None:
    store.create(new_job())

    store.update("job-1", partial(lifecycle.fail, error_type="invalid_input", message="too short"))

    stored = store.get("job-1")
    assert stored.status is JobStatus.FAILED
    assert stored.error is not None
    assert (stored.error.type, stored.error.message) == ("invalid_input", "too short")
    assert stored.result is None
    assert stored.finished_at is not None


def test_a_job_whose_inputs_expired_fails_as_inputs_missing() -> None:
    ended = lifecycle.inputs_missing(new_job(status=JobStatus.RUNNING), NOW)

    assert (ended.status, ended.finished_at) == (JobStatus.FAILED, NOW)
    assert ended.error is not None
    assert ended.error.type == "inputs_missing"


def test_a_job_past_its_time_limit_fails_as_timeout_naming_its_batch() -> None:
    ended = lifecycle.timed_out(new_job(status=JobStatus.RUNNING), batch_jobs=4, now=NOW)

    assert ended.status is JobStatus.FAILED
    assert ended.error is not None
    assert ended.error.type == "timeout"
    assert "4 job(s)" in ended.error.message


def test_cancelling_a_queued_job_ends_it_with_a_finish_time() -> None:
    cancelled = lifecycle.cancel(new_job(), NOW)

    assert (cancelled.status, cancelled.finished_at) == (JobStatus.CANCELLED, NOW)


@pytest.mark.parametrize(
    "status", [JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
)
def test_cancelling_a_job_that_is_not_queued_is_a_conflict_naming_its_state(
    status: JobStatus,
) -> None:
    with pytest.raises(JobConflict) as caught:
        lifecycle.cancel(new_job(status=status))

    assert caught.value.status == status.value


def test_every_update_renews_the_ttl(store: JobStore, client: fakeredis.FakeRedis) -> None:
    store.create(new_job())
    client.expire(keys.job("job-1"), 5)

    store.update("job-1", lifecycle.cancel)

    assert 5 < client.ttl(keys.job("job-1")) <= TTL


def test_the_redis_keys_are_the_documented_ones() -> None:
    # Part of the stored data's format: renaming one orphans what is already in Redis.
    assert keys.job("abc") == "onnxq:job:abc"
    assert keys.tombstone("abc") == "onnxq:job-existed:abc"
    assert keys.rows("abc") == "onnxq:rows:abc"
    assert keys.ACTIVE_JOBS == "onnxq:jobs:active"
    assert keys.idempotency("client", "order-1").startswith("onnxq:idempotency:")
    assert keys.idempotency("client", "order-1") != keys.idempotency("other", "order-1")


def test_creating_a_job_writes_its_record_rows_tombstone_and_active_entry_only(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    job = new_job()

    store.create(job, b"\0" * 8)

    assert sorted(client.keys("*")) == sorted(
        key.encode()
        for key in (
            keys.job("job-1"),
            keys.rows("job-1"),
            keys.tombstone("job-1"),
            keys.ACTIVE_JOBS,
        )
    )


def test_an_update_retries_when_the_record_changes_underneath_it(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    store.create(new_job(rows=2))
    seen_rows = []

    def change(job: Job) -> Job:
        seen_rows.append(job.rows)
        if len(seen_rows) == 1:  # another writer gets in between WATCH and EXEC
            client.set(keys.job("job-1"), job.model_copy(update={"rows": 7}).model_dump_json())
        return job.model_copy(update={"status": JobStatus.RUNNING})

    store.update("job-1", change)

    assert seen_rows == [2, 7]
    stored = store.get("job-1")
    assert (stored.rows, stored.status) == (7, JobStatus.RUNNING)


def test_a_claim_reads_again_when_the_record_changes_between_its_read_and_its_write(
    store: JobStore, client: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(new_job(), b"\0" * 4)
    read, reads = client.mget, []

    def cancelled_meanwhile(names: list[str]) -> list[bytes | None]:
        values = read(names)
        if not reads:  # the client cancels the job after the claim read it as queued
            store.update("job-1", lifecycle.cancel)
        reads.append(values)
        return values

    monkeypatch.setattr(client, "mget", cancelled_meanwhile)

    claims, rows = store.claim_with_rows(["job-1"], max_attempts=3)

    assert len(reads) == 2
    assert claims["job-1"].state is ClaimState.ENDED
    assert store.get("job-1").status is JobStatus.CANCELLED  # not overwritten as running
    assert rows == {"job-1": b"\0" * 4}


def test_a_claim_from_a_read_made_at_take_time_reads_again_if_the_record_changed_since(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    store.create(new_job(), b"\0" * 4)
    taken_with = (client.get(keys.job("job-1")), client.get(keys.rows("job-1")))
    store.update("job-1", lifecycle.cancel)  # after the message was taken, before the claim

    claims, _ = store.claim_with_rows(["job-1"], max_attempts=3, known={"job-1": taken_with})

    assert claims["job-1"].state is ClaimState.ENDED
    assert store.get("job-1").status is JobStatus.CANCELLED


def test_a_claim_returns_the_rows_and_counts_a_job_delivered_twice_in_one_batch_once(
    store: JobStore,
) -> None:
    store.create(new_job(), b"\1" * 4)

    claims, rows = store.claim_with_rows(["job-1", "job-1"], max_attempts=3)

    assert claims["job-1"].state is ClaimState.CLAIMED
    assert store.get("job-1").attempts == 1
    assert rows == {"job-1": b"\1" * 4}


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
        lambda store: store.update("job-1", lifecycle.cancel),
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
    return private_queue_name()


@pytest.fixture
def celery_app(queue_name: str):
    return in_memory_celery(
        Settings(_env_file=None, redis_url="redis://127.0.0.1:1/0", queue_name=queue_name)
    )


def test_submit_records_a_queued_job_and_sends_its_task(
    celery_app, store: JobStore, queue_name: str
) -> None:
    queue = JobQueue(celery_app, store)

    matrix = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)

    job = queue.submit(model="breast-cancer", version=1, matrix=matrix, request_id="r-9").job

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
    # A small message: the rows wait beside the record as float32 bytes, never as JSON.
    assert kwargs == {
        "job_id": job.job_id,
        "model": "breast-cancer",
        "version": 1,
        "request_id": "r-9",
        "width": 2,
        "rows": 2,
    }
    assert store.claim_with_rows([job.job_id], max_attempts=3)[1] == {job.job_id: matrix.tobytes()}


def test_each_submission_gets_its_own_job_id(celery_app, store: JobStore) -> None:
    queue = JobQueue(celery_app, store)

    ids = {queue.submit(model="m", version=1, matrix=ONE_ROW).job.job_id for _ in range(3)}

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
        assert client.exists(keys.job(options["task_id"]))  # recorded before sending
        raise failure

    monkeypatch.setattr(celery_app, "send_task", refuse)

    with pytest.raises(QueueUnavailable) as caught:
        JobQueue(celery_app, store).submit(model="m", version=1, matrix=ONE_ROW)

    assert caught.value.__cause__ is failure
    assert len(sent) == 1
    assert client.keys(keys.JOB_PREFIX + "*") == []


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
        JobQueue(celery_app, store).submit(model="m", version=1, matrix=ONE_ROW)

    assert caught.value.__cause__ is failure
    server.connected = True
    # The delete could not happen: the orphan record remains until its TTL ends.
    [key] = client.keys(keys.JOB_PREFIX + "*")
    assert 0 < client.ttl(key) <= TTL


def test_no_task_is_sent_when_the_job_cannot_be_recorded(
    celery_app, unreachable_store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = []
    monkeypatch.setattr(celery_app, "send_task", lambda *args, **kwargs: sent.append(kwargs))

    with pytest.raises(QueueUnavailable):
        JobQueue(celery_app, unreachable_store).submit(model="m", version=1, matrix=ONE_ROW)

    assert sent == []


def test_storing_no_jobs_is_a_no_op(store: JobStore) -> None:
    assert store.store_many([]) == set()


def callback_messages(celery_app, queue_name: str) -> list[dict[str, Any]]:
    with celery_app.connection_for_read() as connection:
        simple = connection.SimpleQueue(
            callback_queue(Settings(_env_file=None, queue_name=queue_name))
        )
        found = []
        while simple.qsize():
            message = simple.get(timeout=1)
            message.ack()
            found.append(message.payload[1])
        simple.close()
    return found


def test_a_job_with_a_callback_url_gets_one_callback_task(celery_app, queue_name: str) -> None:
    queue_callback(celery_app, new_job(callback_url="http://127.0.0.1:9/hook"))
    queue_callback(celery_app, new_job(job_id="job-2"))  # no callback_url: nothing to send

    assert callback_messages(celery_app, queue_name) == [{"job_id": "job-1"}]


def test_a_callback_that_cannot_be_queued_is_logged_and_never_raised(
    celery_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(name: str, **options: Any) -> None:
        raise OperationalError("broker is down")

    monkeypatch.setattr(celery_app, "send_task", refuse)
    logged: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        queue_module.log, "error", lambda event, **fields: logged.append((event, fields))
    )

    queue_callback(celery_app, new_job(callback_url="http://127.0.0.1:9/hook"))

    assert [(event, fields["job_id"]) for event, fields in logged] == [
        ("callback_not_queued", "job-1")
    ]


def test_cancel_queues_the_callback_of_a_job_that_asked_for_one(
    celery_app, store: JobStore, queue_name: str
) -> None:
    store.create(new_job(callback_url="http://127.0.0.1:9/hook"))

    cancelled = JobQueue(celery_app, store).cancel("job-1")

    assert cancelled.status is JobStatus.CANCELLED
    assert store.get("job-1") == cancelled
    assert store.client.zscore(keys.ACTIVE_JOBS, "job-1") is None
    assert callback_messages(celery_app, queue_name) == [{"job_id": "job-1"}]
