"""A job's end is announced with its final record to whoever waits for it, and a waiter answers
from it (JobWaiter)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import fakeredis
import pytest

from onnxq.devtools.waiting import wait_until
from onnxq.jobs import keys, lifecycle
from onnxq.jobs.record import Job, dump_job
from onnxq.jobs.scripts import ENDED_RECORD_MAX_BYTES, parse_ended_message
from onnxq.jobs.store import JobStore
from onnxq.jobs.waiting import JobWaiter, Wakeup
from tests.support.records import queued_job

NOW = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)


class CountingStore(JobStore):
    """The real store, counting the records it reads back."""

    reads = 0

    def get(self, job_id: str) -> Job:
        self.reads += 1
        return super().get(job_id)


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def store(redis_client: fakeredis.FakeRedis) -> CountingStore:
    return CountingStore(redis_client, ttl_seconds=600)


WAITER = keys.waiter_channel("test")


def queued(notify: str | None = WAITER) -> Job:
    job = queued_job("a" * 32, model="m", rows=1, request_id=None, submitted_at=NOW)
    return job.model_copy(update={"notify": notify})


def succeeded(job: Job, result: dict) -> Job:
    return lifecycle.succeed(lifecycle.start(job, NOW), result, NOW)


def announcements(
    redis_client: fakeredis.FakeRedis, end: Callable[[], object], channel: str = WAITER
) -> list[bytes]:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    end()
    # The first read takes the (ignored) subscribe confirmation and gives None.
    read = [pubsub.get_message(timeout=0.1) for _ in range(3)]
    return [message["data"] for message in read if message is not None]


def test_a_job_end_is_announced_with_its_final_record(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    job = queued()
    store.create(job)
    done = succeeded(job, {"labels": [1]})
    [message] = announcements(redis_client, lambda: store.store_many([done]))
    job_id, record = parse_ended_message(message)
    assert job_id == job.job_id
    assert record == dump_job(done) == redis_client.get(keys.job(job.job_id))


def test_a_large_final_record_is_announced_by_id_alone(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    job = queued()
    store.create(job)
    # Random-looking labels: a record that stays large after dump_job's compression.
    labels = [(i * 7919) % 10007 for i in range(ENDED_RECORD_MAX_BYTES)]
    done = succeeded(job, {"labels": labels})
    assert len(dump_job(done)) > ENDED_RECORD_MAX_BYTES
    [message] = announcements(redis_client, lambda: store.store_many([done]))
    assert parse_ended_message(message) == (job.job_id, None)


def wait_for_end(
    waiter: JobWaiter, store: CountingStore, job: Job, end: Callable[[], object]
) -> tuple[Job, int]:
    """Register, create the job, let another thread end it; (what the waiter saw, records it
    read back)."""
    assert waiter.wait_subscribed(10)

    def worker() -> None:
        wait_until(lambda: waiter.waiting() >= 1, 10, "the waiter to register")
        end()

    with waiter.registered(job.job_id) as waiting:
        job = job.model_copy(update={"notify": waiter.channel})  # as a Prefer: wait submit
        store.create(job)
        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        seen = waiter.until_ended_from(waiting, store, job, seconds=30)
    thread.join(10)
    return seen, store.reads


def test_a_waiter_answers_from_the_announcement_without_reading_the_record(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    waiter = JobWaiter(lambda: redis_client)
    job = queued(notify=waiter.channel)
    done = succeeded(job, {"labels": [1]})
    seen, reads = wait_for_end(waiter, store, job, lambda: store.store_many([done]))
    assert seen == done
    assert reads == 0


def test_a_waiter_reads_the_record_when_the_announcement_has_none(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    job = queued(notify=None)
    done = succeeded(job, {"labels": [1]})

    def end_announced_by_id() -> None:  # as a record too large to announce is
        redis_client.set(keys.job(job.job_id), dump_job(done))
        redis_client.publish(keys.JOBS_ENDED, job.job_id)

    waiter = JobWaiter(lambda: redis_client)
    seen, reads = wait_for_end(waiter, store, job, end_announced_by_id)
    assert seen == done
    assert reads == 1


def test_an_end_wakes_only_its_waiter_while_no_poll_watches_it(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    job, other = queued(), queued(notify=None).model_copy(update={"job_id": "b" * 32})
    store.create(job)
    store.create(other)
    ends = [succeeded(job, {"labels": [1]}), succeeded(other, {"labels": [0]})]

    shared = announcements(redis_client, lambda: store.store_many(ends), keys.JOBS_ENDED)

    assert shared == []  # neither is watched: the other gateway processes are not woken
    assert redis_client.get(keys.job(other.job_id)) == dump_job(ends[1])


POLLER = keys.waiter_channel("poller")
OTHER_POLLER = keys.waiter_channel("other-poller")


def heard(redis_client: fakeredis.FakeRedis, end: Callable[[], object]) -> list[str]:
    """The channels (of WAITER, the two pollers' and the shared one) that heard `end`."""
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(WAITER, POLLER, OTHER_POLLER, keys.JOBS_ENDED)
    end()
    read = [pubsub.get_message(timeout=0.1) for _ in range(6)]
    return sorted(m["channel"].decode() for m in read if m is not None)


def test_a_watched_job_is_announced_to_the_process_whose_poll_watches_it(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    job = queued()
    store.create(job)
    assert store.get_watched(job.job_id, seconds=10, watcher=POLLER) == job
    assert 10 < redis_client.ttl(keys.watched(job.job_id)) <= 15
    done = succeeded(job, {"labels": [1]})

    # Not on the shared channel: the other gateway processes are not woken.
    assert heard(redis_client, lambda: store.store_many([done])) == sorted([WAITER, POLLER])


def test_a_job_watched_by_polls_of_two_processes_is_announced_on_the_shared_channel(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    job = queued()
    store.create(job)
    store.get_watched(job.job_id, seconds=30, watcher=POLLER)
    store.get_watched(job.job_id, seconds=1, watcher=OTHER_POLLER)
    assert redis_client.ttl(keys.watched(job.job_id)) > 30  # the longer wait's mark is kept
    done = succeeded(job, {"labels": [1]})

    assert heard(redis_client, lambda: store.store_many([done])) == sorted(
        [WAITER, keys.JOBS_ENDED]
    )


def test_a_job_watched_by_its_own_waiter_process_is_announced_there_once(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    job = queued()
    store.create(job)
    store.get_watched(job.job_id, seconds=10, watcher=WAITER)
    store.get_watched(job.job_id, seconds=10, watcher=WAITER)  # the same process again
    done = succeeded(job, {"labels": [1]})

    assert heard(redis_client, lambda: store.store_many([done])) == [WAITER]


def test_an_older_release_s_watched_mark_is_announced_on_the_shared_channel(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    job = queued(notify=None)
    store.create(job)
    redis_client.set(keys.watched(job.job_id), b"1", ex=10)
    done = succeeded(job, {"labels": [1]})

    assert heard(redis_client, lambda: store.store_many([done])) == [keys.JOBS_ENDED]


def test_a_waiting_poll_in_another_process_is_woken_by_a_job_another_process_waits_for(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    submitter, poller = JobWaiter(lambda: redis_client), JobWaiter(lambda: redis_client)
    assert poller.wait_subscribed(10)
    job = queued(notify=submitter.channel)  # a Prefer: wait submit through another process
    assert poller.channel != submitter.channel
    store.create(job)
    done = succeeded(job, {"labels": [1]})
    seen: list[Job] = []
    polling = threading.Thread(
        target=lambda: seen.append(poller.until_ended(store, job.job_id, seconds=30)), daemon=True
    )
    polling.start()
    wait_until(lambda: redis_client.exists(keys.watched(job.job_id)), 10, "the poll to watch")

    store.store_many([done])

    polling.join(10)
    assert seen == [done]


def test_a_cancel_is_announced_to_its_waiter_and_on_the_shared_channel(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    job = queued()
    store.create(job)
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(WAITER, keys.JOBS_ENDED)

    store.update(job.job_id, lifecycle.cancel)

    read = [pubsub.get_message(timeout=0.1) for _ in range(4)]
    assert sorted(m["channel"].decode() for m in read if m is not None) == sorted(
        [WAITER, keys.JOBS_ENDED]
    )


def test_every_thread_sees_one_channel_per_process() -> None:
    waiter = JobWaiter(fakeredis.FakeRedis)
    seen: list[str] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        seen.append(waiter.channel)  # the listener thread asks for it too, at start

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(set(seen)) == 1 and len(seen) == 8


def test_a_waiting_poll_of_an_ended_job_answers_from_one_read_without_watching_it(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    job = queued()
    store.create(job)
    done = succeeded(job, {"labels": [1]})
    store.store_many([done])
    waiter = JobWaiter(lambda: redis_client)

    assert waiter.until_ended(store, job.job_id, 30) == done
    assert store.reads == 1
    assert redis_client.exists(keys.watched(job.job_id)) == 0  # nobody need announce its end


def test_a_waiting_poll_of_a_running_job_watches_it_and_is_woken_by_its_end(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    job = queued(notify=None)  # submitted without Prefer: only the shared channel hears its end
    store.create(job)
    waiter = JobWaiter(lambda: redis_client)
    assert waiter.wait_subscribed(10)
    done = succeeded(job, {"labels": [1]})
    answers: list[Job] = []
    poll = threading.Thread(
        target=lambda: answers.append(waiter.until_ended(store, job.job_id, 30))
    )
    poll.start()
    wait_until(lambda: redis_client.exists(keys.watched(job.job_id)), 10, "the poll to watch")
    store.store_many([done])
    poll.join(10)
    assert answers == [done]


class ManyReadsStore(CountingStore):
    """The real store, counting its reads of several records at once."""

    many_reads = 0

    def get_many(self, job_ids: list[str]) -> dict[str, Job]:
        self.many_reads += 1
        return super().get_many(job_ids)


def three_jobs(store: JobStore) -> list[Job]:
    jobs = [queued(notify=None).model_copy(update={"job_id": c * 32}) for c in "abc"]
    for job in jobs:
        store.create(job)
    return jobs


def test_waiting_for_jobs_that_have_all_ended_is_one_read_watching_none(
    redis_client: fakeredis.FakeRedis,
) -> None:
    store = ManyReadsStore(redis_client, ttl_seconds=600)
    jobs = three_jobs(store)
    ends = [succeeded(job, {"labels": [i]}) for i, job in enumerate(jobs)]
    store.store_many(ends)
    waiter = JobWaiter(lambda: redis_client)

    seen = waiter.until_all_ended(store, [job.job_id for job in jobs] + ["d" * 32], 30)

    assert seen == {job.job_id: job for job in ends}  # the unknown id is left out
    assert store.many_reads == 1
    assert not any(redis_client.exists(keys.watched(job.job_id)) for job in jobs)
    assert waiter.waiting() == 0


def test_waiting_for_several_jobs_answers_once_every_one_has_ended(
    redis_client: fakeredis.FakeRedis,
) -> None:
    store = ManyReadsStore(redis_client, ttl_seconds=600)
    jobs = three_jobs(store)
    ends = [succeeded(job, {"labels": [i]}) for i, job in enumerate(jobs)]
    store.store_many(ends[:1])  # already ended when asked for: not watched
    waiter = JobWaiter(lambda: redis_client)
    assert waiter.wait_subscribed(10)
    answers: list[dict[str, Job]] = []
    poll = threading.Thread(
        target=lambda: answers.append(
            waiter.until_all_ended(store, [job.job_id for job in jobs], 30)
        )
    )
    poll.start()
    wait_until(lambda: redis_client.exists(keys.watched(jobs[2].job_id)), 10, "the poll to watch")
    assert not redis_client.exists(keys.watched(jobs[0].job_id))
    store.store_many(ends[1:2])  # announced with its record

    def end_announced_by_id() -> None:  # as a record too large to announce is
        redis_client.set(keys.job(jobs[2].job_id), dump_job(ends[2]))
        redis_client.publish(keys.JOBS_ENDED, jobs[2].job_id)

    end_announced_by_id()
    poll.join(10)
    assert answers == [{job.job_id: job for job in ends}]
    assert waiter.waiting() == 0


def test_waiting_for_several_jobs_answers_at_the_deadline_with_their_current_state(
    store: CountingStore, redis_client: fakeredis.FakeRedis
) -> None:
    jobs = three_jobs(store)
    done = succeeded(jobs[0], {"labels": [1]})
    store.store_many([done])
    waiter = JobWaiter(lambda: redis_client)

    seen = waiter.until_all_ended(store, [job.job_id for job in jobs], 0.2)

    assert seen == {jobs[0].job_id: done, jobs[1].job_id: jobs[1], jobs[2].job_id: jobs[2]}
    assert waiter.waiting() == 0


def test_a_wakeup_says_which_records_to_read_back() -> None:
    ids = ["a", "b", "c"]
    assert Wakeup({"a": b"{}", "b": None}, everything=False).to_read(ids) == ["b"]
    assert Wakeup({"a": b"{}"}, everything=True).to_read(ids) == ids  # announcements missed


def test_one_request_waiting_for_several_jobs_counts_as_one_waiter(
    redis_client: fakeredis.FakeRedis,
) -> None:
    waiter = JobWaiter(lambda: redis_client)
    with waiter.registered("a" * 32, "b" * 32), waiter.registered("a" * 32):
        assert waiter.waiting() == 2
    assert waiter.waiting() == 0
