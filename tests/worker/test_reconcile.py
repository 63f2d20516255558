"""The reconciler over fakeredis: lost messages are re-sent, waiting ones are not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import numpy as np
import pytest

from onnxq.jobs import keys, lifecycle
from onnxq.jobs.queue import JobQueue
from onnxq.jobs.record import Job, JobStatus
from onnxq.jobs.store import JobStore
from worker.reconcile import JobReconciler

QUEUE = "onnxq.predict"
STALE = 120.0
TIME_LIMIT = 300.0
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class RecordingCelery:
    """Stands in for the Celery app: records what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str | None]] = []

    def send_task(
        self, name: str, kwargs: dict[str, Any], task_id: str | None = None, **_: Any
    ) -> None:
        self.sent.append((name, kwargs, task_id))


@pytest.fixture
def store() -> JobStore:
    return JobStore(fakeredis.FakeRedis(), ttl_seconds=3600)


@pytest.fixture
def celery() -> RecordingCelery:
    return RecordingCelery()


@pytest.fixture
def reconciler(store: JobStore, celery: RecordingCelery) -> JobReconciler:
    queue = JobQueue(celery, store)  # type: ignore[arg-type]
    return JobReconciler(store, queue, [QUEUE], stale_seconds=STALE, time_limit_seconds=TIME_LIMIT)


def submitted(store: JobStore, job_id: str, at: datetime = T0, rows: int = 2) -> Job:
    job = Job(
        job_id=job_id,
        status=JobStatus.QUEUED,
        model="m",
        version=1,
        rows=rows,
        request_id="req-1",
        submitted_at=at,
    )
    store.create(job, np.zeros((rows, 3), dtype=np.float32).tobytes())
    return job


def message(job_id: str) -> bytes:
    return json.dumps({"body": "", "headers": {"id": job_id, "task": "onnxq.predict"}}).encode()


def test_a_queued_job_whose_message_vanished_is_resent_with_its_rows_shape(
    store: JobStore, celery: RecordingCelery, reconciler: JobReconciler
) -> None:
    submitted(store, "lost", rows=2)
    report = reconciler.run(T0 + timedelta(seconds=STALE + 1))
    assert report.resent == ["lost"]
    name, kwargs, task_id = celery.sent[0]
    assert (name, task_id) == ("onnxq.predict", "lost")
    assert kwargs == {
        "job_id": "lost",
        "model": "m",
        "version": 1,
        "request_id": "req-1",
        "width": 3,
        "rows": 2,
    }


def test_a_queued_job_is_left_alone_before_it_is_stale(
    store: JobStore, celery: RecordingCelery, reconciler: JobReconciler
) -> None:
    submitted(store, "young")
    assert reconciler.run(T0 + timedelta(seconds=STALE - 1)).examined == 0
    assert celery.sent == []


def test_a_stale_queued_job_whose_message_still_waits_in_the_queue_is_not_resent(
    store: JobStore, celery: RecordingCelery, reconciler: JobReconciler
) -> None:
    submitted(store, "waiting")
    store.client.lpush(QUEUE, message("waiting"))
    report = reconciler.run(T0 + timedelta(seconds=STALE + 1))
    assert (report.resent, report.waiting) == ([], 1)
    assert celery.sent == []


def test_a_stale_queued_job_whose_message_a_consumer_holds_unacked_is_not_resent(
    store: JobStore, celery: RecordingCelery, reconciler: JobReconciler
) -> None:
    submitted(store, "held")
    store.client.hset(
        keys.KOMBU_UNACKED, "tag-1", json.dumps([json.loads(message("held")), "", QUEUE])
    )
    assert reconciler.run(T0 + timedelta(seconds=STALE + 1)).resent == []


def test_with_a_queue_too_long_to_scan_queued_jobs_are_assumed_waiting(
    store: JobStore, celery: RecordingCelery, reconciler: JobReconciler
) -> None:
    reconciler.scan_limit = 2
    submitted(store, "maybe-lost")
    store.client.lpush(QUEUE, message("a"), message("b"), message("c"))
    report = reconciler.run(T0 + timedelta(seconds=STALE + 1))
    assert report.queue_too_long and report.resent == []


def test_a_running_job_is_resent_only_after_the_hard_time_limit_has_passed(
    store: JobStore, celery: RecordingCelery, reconciler: JobReconciler
) -> None:
    submitted(store, "stuck")
    claim_time = T0 + timedelta(seconds=1)
    store.update("stuck", lambda job: lifecycle.start(job, claim_time))  # as claim_many does
    store.client.zadd(keys.ACTIVE_JOBS, {"stuck": claim_time.timestamp()})
    store.client.hset(
        keys.KOMBU_UNACKED, "tag-1", json.dumps([json.loads(message("stuck")), "", QUEUE])
    )

    assert reconciler.run(claim_time + timedelta(seconds=TIME_LIMIT)).resent == []
    later = claim_time + timedelta(seconds=TIME_LIMIT + STALE + 1)
    assert reconciler.run(later).resent == ["stuck"]


def test_ended_and_expired_jobs_leave_the_active_index_and_are_never_resent(
    store: JobStore, celery: RecordingCelery, reconciler: JobReconciler
) -> None:
    submitted(store, "done")
    submitted(store, "gone")
    store.update("done", lifecycle.cancel)
    store.client.zadd(keys.ACTIVE_JOBS, {"done": T0.timestamp()})  # as if left behind
    store.client.delete(keys.job("gone"))
    report = reconciler.run(T0 + timedelta(seconds=STALE + 1))
    assert report.forgotten == 2 and celery.sent == []
    assert store.client.zcard(keys.ACTIVE_JOBS) == 0


def test_the_active_index_holds_jobs_from_submit_until_they_end(store: JobStore) -> None:
    job = submitted(store, "j")
    assert store.client.zscore(keys.ACTIVE_JOBS, "j") == job.submitted_at.timestamp()
    store.claim_many(["j"], max_attempts=3)
    store.store_many([lifecycle.succeed(store.get("j"), {})])
    assert store.client.zscore(keys.ACTIVE_JOBS, "j") is None


def test_a_resent_job_without_stored_rows_is_sent_with_width_zero_so_the_worker_fails_it(
    store: JobStore, celery: RecordingCelery, reconciler: JobReconciler
) -> None:
    submitted(store, "rowless")
    store.client.delete(keys.rows("rowless"))
    reconciler.run(T0 + timedelta(seconds=STALE + 1))
    assert celery.sent[0][1]["width"] == 0
