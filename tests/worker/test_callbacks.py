"""Completion callbacks, against a real HTTP server on 127.0.0.1: post_json and deliver_callback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import fakeredis
import pytest

from onnxq.destinations import DestinationPolicy
from onnxq.devtools.redis_server import free_port
from onnxq.jobs import keys, lifecycle
from onnxq.jobs.record import Job, JobStatus
from onnxq.jobs.store import JobStore
from onnxq.webhook import DestinationRefused, WebhookFailed, post_json
from tests.support.http_receiver import HttpReceiver
from worker.callbacks import (
    MAX_BACKOFF_SECONDS,
    CallbackOutcome,
    callback_delay,
    deliver_callback,
)

JOB_ID = "0123456789abcdef0123456789abcdef"
# The receivers listen on loopback, which the shipped policy refuses.
LOOPBACK = DestinationPolicy.parse(["127.0.0.1"])
RESULT = {
    "model": "breast-cancer",
    "version": 1,
    "labels": [1, 0],
    "probabilities": [[0.25, 0.75], [0.875, 0.125]],
    "classes": [0, 1],
}


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as server:
        yield server


def closed_port_url() -> str:
    """A URL on a port nothing listens on: the connection is refused."""
    return f"http://127.0.0.1:{free_port()}/hook"


def store_job(store: JobStore, callback_url: str | None, *, succeeded: bool = True) -> Job:
    store.create(
        Job(
            job_id=JOB_ID,
            status=JobStatus.QUEUED,
            model="breast-cancer",
            version=1,
            rows=2,
            request_id="req-cb",
            submitted_at=datetime.now(UTC),
            callback_url=callback_url,
        )
    )
    if not succeeded:
        return store.get(JOB_ID)
    # As a worker ends it: claim, run, store the outcome.
    claimed = store.claim_many([JOB_ID], max_attempts=3)[JOB_ID].job
    assert claimed is not None
    store.store_many([lifecycle.succeed(claimed, RESULT)])
    return store.get(JOB_ID)


def deliver(store: JobStore, attempt: int = 0, max_attempts: int = 3) -> CallbackOutcome:
    return deliver_callback(
        JOB_ID,
        store=store,
        attempt=attempt,
        max_attempts=max_attempts,
        timeout=2.0,
        destinations=LOOPBACK,
    )


# post_json


def test_post_json_sends_the_document_as_json_and_returns_the_2xx_status(
    receiver: HttpReceiver,
) -> None:
    receiver.statuses = [204]
    document = {"job_id": JOB_ID, "status": "succeeded", "result": RESULT}

    assert post_json(receiver.url, document, timeout=2.0, policy=LOOPBACK) == 204

    [request] = receiver.posts
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == document


@pytest.mark.parametrize("status", [404, 500])
def test_post_json_raises_callback_failed_naming_the_status_of_an_error_answer(
    receiver: HttpReceiver, status: int
) -> None:
    receiver.statuses = [status]

    with pytest.raises(WebhookFailed, match=f"HTTP {status}"):
        post_json(receiver.url, {"job_id": JOB_ID}, timeout=2.0, policy=LOOPBACK)

    assert len(receiver.posts) == 1


def test_post_json_raises_callback_failed_when_the_connection_is_refused() -> None:
    with pytest.raises(WebhookFailed, match=r"(?i)refused"):
        post_json(closed_port_url(), {"job_id": JOB_ID}, timeout=2.0, policy=LOOPBACK)


def test_post_json_raises_callback_failed_when_the_receiver_answers_too_late() -> None:
    with HttpReceiver([200], delay=1.5) as slow:
        started = time.monotonic()
        with pytest.raises(WebhookFailed):
            post_json(slow.url, {"job_id": JOB_ID}, timeout=0.3, policy=LOOPBACK)
        assert time.monotonic() - started < 1.4


def test_post_json_does_not_count_a_redirect_as_a_delivery(receiver: HttpReceiver) -> None:
    # urllib turns a POST answered with 302 into a body-less GET of the new location;
    # a 200 to that GET delivered nothing, so it must not be reported as delivered.
    receiver.statuses = [302, 200]

    with pytest.raises(WebhookFailed):
        status = post_json(receiver.url, {"job_id": JOB_ID}, timeout=2.0, policy=LOOPBACK)
        seen = [(request.method, request.path, request.body) for request in receiver.received]
        pytest.fail(f"reported as delivered (HTTP {status}) after these requests: {seen}")

    assert [request.method for request in receiver.received] == ["POST"]


# deliver_callback


def test_post_json_refuses_a_loopback_destination_without_connecting(
    receiver: HttpReceiver,
) -> None:
    with pytest.raises(DestinationRefused, match="loopback"):
        post_json(receiver.url, {"job_id": JOB_ID}, timeout=2.0, policy=DestinationPolicy())
    assert receiver.received == []


def test_post_json_checks_the_address_a_name_resolves_to_and_allows_a_listed_name(
    receiver: HttpReceiver,
) -> None:
    by_name = receiver.url.replace("127.0.0.1", "localhost")
    with pytest.raises(DestinationRefused, match=r"localhost is (127\.0\.0\.1|::1)"):
        post_json(by_name, {"job_id": JOB_ID}, timeout=2.0, policy=DestinationPolicy())
    allowed = DestinationPolicy.parse(["localhost"])
    assert post_json(by_name, {"job_id": JOB_ID}, timeout=2.0, policy=allowed) == 200


def test_a_refused_destination_fails_the_callback_at_once_without_a_retry(
    job_store: JobStore, receiver: HttpReceiver
) -> None:
    store_job(job_store, receiver.url)
    outcome = deliver_callback(
        JOB_ID,
        store=job_store,
        attempt=0,
        max_attempts=5,
        timeout=2.0,
        destinations=DestinationPolicy(),
    )
    assert outcome is CallbackOutcome.FAILED
    assert receiver.received == []


def test_deliver_callback_posts_the_jobs_public_document_and_says_delivered(
    receiver: HttpReceiver, job_store: JobStore
) -> None:
    store_job(job_store, receiver.url)

    assert deliver(job_store) is CallbackOutcome.DELIVERED

    [request] = receiver.posts
    document = request.json()
    assert document == job_store.get(JOB_ID).public()
    assert document["job_id"] == JOB_ID
    assert document["status"] == "succeeded"
    assert document["result"] == RESULT
    assert document["request_id"] == "req-cb"


def test_deliver_callback_reports_a_cancelled_job_as_cancelled(
    receiver: HttpReceiver, job_store: JobStore
) -> None:
    store_job(job_store, receiver.url, succeeded=False)
    job_store.update(JOB_ID, lifecycle.cancel)  # what JobQueue.cancel does

    assert deliver(job_store) is CallbackOutcome.DELIVERED

    [request] = receiver.posts
    assert request.json()["status"] == "cancelled"
    assert "result" not in request.json()


@pytest.mark.parametrize(
    ("attempt", "max_attempts", "expected"),
    [
        (0, 3, CallbackOutcome.RETRY),
        (1, 3, CallbackOutcome.RETRY),
        (2, 3, CallbackOutcome.FAILED),
        (0, 1, CallbackOutcome.FAILED),
    ],
    ids=["first-of-3", "second-of-3", "last-of-3", "only-attempt"],
)
def test_a_failed_delivery_retries_before_the_last_attempt_and_fails_on_it(
    receiver: HttpReceiver,
    job_store: JobStore,
    attempt: int,
    max_attempts: int,
    expected: CallbackOutcome,
) -> None:
    receiver.statuses = [500]
    store_job(job_store, receiver.url)

    assert deliver(job_store, attempt=attempt, max_attempts=max_attempts) is expected
    assert len(receiver.posts) == 1


def test_a_refused_connection_is_retried_like_an_error_answer(job_store: JobStore) -> None:
    store_job(job_store, closed_port_url())

    assert deliver(job_store, attempt=0, max_attempts=2) is CallbackOutcome.RETRY
    assert deliver(job_store, attempt=1, max_attempts=2) is CallbackOutcome.FAILED


def test_a_delivery_succeeds_on_a_later_attempt_after_failures(
    receiver: HttpReceiver, job_store: JobStore
) -> None:
    receiver.statuses = [500, 503, 200]
    store_job(job_store, receiver.url)

    outcomes = [deliver(job_store, attempt=attempt, max_attempts=4) for attempt in range(3)]

    assert outcomes == [CallbackOutcome.RETRY, CallbackOutcome.RETRY, CallbackOutcome.DELIVERED]
    assert [request.json() for request in receiver.posts] == [job_store.get(JOB_ID).public()] * 3


def test_a_job_that_never_existed_is_dropped_without_a_post(
    receiver: HttpReceiver, job_store: JobStore
) -> None:
    assert deliver(job_store) is CallbackOutcome.DROPPED
    assert receiver.received == []


def test_a_job_whose_record_expired_is_dropped_without_a_post(
    receiver: HttpReceiver, job_store: JobStore, redis_client: fakeredis.FakeRedis
) -> None:
    store_job(job_store, receiver.url)
    redis_client.delete(keys.job(JOB_ID))  # the TTL ran out; the tombstone remains
    assert redis_client.exists(keys.tombstone(JOB_ID))

    assert deliver(job_store) is CallbackOutcome.DROPPED
    assert receiver.received == []


def test_a_job_without_a_callback_url_is_dropped(
    receiver: HttpReceiver, job_store: JobStore
) -> None:
    store_job(job_store, None)

    assert deliver(job_store) is CallbackOutcome.DROPPED
    assert receiver.received == []


def test_failed_callbacks_leave_the_jobs_stored_state_unchanged(
    receiver: HttpReceiver, job_store: JobStore, redis_client: fakeredis.FakeRedis
) -> None:
    receiver.statuses = [500]
    store_job(job_store, receiver.url)
    before = redis_client.get(keys.job(JOB_ID))

    outcomes = [deliver(job_store, attempt=attempt, max_attempts=3) for attempt in range(3)]

    assert outcomes[-1] is CallbackOutcome.FAILED
    assert len(receiver.posts) == 3
    assert redis_client.get(keys.job(JOB_ID)) == before
    stored = job_store.get(JOB_ID)
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.result == RESULT
    assert stored.error is None


# callback_delay: onnxq.backoff's formula, capped at a minute


@pytest.mark.parametrize(
    ("attempt", "base", "expected"),
    [(0, 1.0, 1.0), (1, 1.0, 2.0), (2, 1.0, 4.0), (5, 1.0, 32.0), (0, 0.2, 0.2), (2, 0.2, 0.8)],
)
def test_backoff_starts_at_the_base_and_doubles_each_attempt(
    attempt: int, base: float, expected: float
) -> None:
    assert callback_delay(attempt, base) == pytest.approx(expected)


@pytest.mark.parametrize(("attempt", "base"), [(6, 1.0), (19, 1.0), (3, 10.0), (0, 120.0)])
def test_backoff_is_capped_at_a_minute(attempt: int, base: float) -> None:
    assert MAX_BACKOFF_SECONDS == 60.0
    assert callback_delay(attempt, base) == 60.0
