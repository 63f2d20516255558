"""The backlog (onnxq/jobs/backlog.py): outstanding jobs and the oldest one's age, read from the
active index the job store keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import fakeredis
import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from onnxq.errors import QueueUnavailable
from onnxq.jobs import keys, lifecycle
from onnxq.jobs.backlog import Backlog, read_backlog
from onnxq.jobs.lifecycle import ClaimState
from onnxq.jobs.store import JobStore
from tests.support.records import SUBMITTED_AT, queued_job

ONE_ROW = np.ones((1, 1), dtype=np.float32).tobytes()


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def store(client: fakeredis.FakeRedis) -> JobStore:
    return JobStore(client, ttl_seconds=600)


def test_no_jobs_is_an_empty_backlog(client: fakeredis.FakeRedis) -> None:
    assert read_backlog(client, SUBMITTED_AT) == Backlog(outstanding=0, oldest_age_seconds=0.0)


def test_every_job_created_counts_and_the_oldest_submit_gives_the_age(
    client: fakeredis.FakeRedis, store: JobStore
) -> None:
    store.create(queued_job("job-a", submitted_at=SUBMITTED_AT), ONE_ROW)
    store.create(queued_job("job-b", submitted_at=SUBMITTED_AT + timedelta(seconds=30)), ONE_ROW)

    backlog = read_backlog(client, SUBMITTED_AT + timedelta(seconds=42.5))

    assert backlog == Backlog(outstanding=2, oldest_age_seconds=42.5)


def test_a_job_taken_by_a_worker_still_counts_until_it_ends(
    client: fakeredis.FakeRedis, store: JobStore
) -> None:
    store.create(queued_job("job-a"), ONE_ROW)
    store.create(queued_job("job-b"), ONE_ROW)
    claim = store.claim_many(["job-a"], max_attempts=3)["job-a"]
    assert claim.state is ClaimState.CLAIMED and claim.job is not None
    assert read_backlog(client, SUBMITTED_AT).outstanding == 2

    store.store_many([lifecycle.succeed(claim.job, result={})])

    assert read_backlog(client, SUBMITTED_AT).outstanding == 1


def test_the_age_is_never_negative_when_this_clock_is_behind_the_writer(
    client: fakeredis.FakeRedis, store: JobStore
) -> None:
    store.create(queued_job("job-a"), ONE_ROW)
    earlier = SUBMITTED_AT - timedelta(seconds=2)
    assert read_backlog(client, earlier).oldest_age_seconds == 0.0


def test_the_age_is_of_the_lowest_score_in_the_active_index(client: fakeredis.FakeRedis) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    client.zadd(keys.ACTIVE_JOBS, {"late": now.timestamp() - 1, "early": now.timestamp() - 90})
    assert read_backlog(client, now) == Backlog(outstanding=2, oldest_age_seconds=90.0)


def test_redis_unreachable_is_queue_unavailable() -> None:
    # Nothing listens on port 1; no retries, so the refusal is immediate.
    client = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    with pytest.raises(QueueUnavailable):
        read_backlog(client, SUBMITTED_AT)
