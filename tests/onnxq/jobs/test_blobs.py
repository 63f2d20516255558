"""The blob store (onnxq/jobs/blobs.py) and the job store's use of it: the rows and results of
large jobs kept out of Redis, removed when their job ends or expires."""

from __future__ import annotations

import os
import time
from pathlib import Path

import fakeredis
import numpy as np
import pytest

from onnxq.jobs import blobs, keys, lifecycle
from onnxq.jobs.blobs import DirectoryBlobs
from onnxq.jobs.store import JobStore
from tests.support.records import queued_job

TTL = 600
ROWS = np.arange(30 * 4, dtype=np.float32).reshape(4, 30)


@pytest.fixture
def directory(tmp_path: Path) -> DirectoryBlobs:
    return DirectoryBlobs(tmp_path / "blobs")


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def store(client: fakeredis.FakeRedis, directory: DirectoryBlobs) -> JobStore:
    return JobStore(client, ttl_seconds=TTL, blobs=directory, inline_rows=2)


def files(directory: DirectoryBlobs) -> list[str]:
    return sorted(p.name for p in directory.root.iterdir()) if directory.root.exists() else []


def test_a_blob_reads_back_mapped_and_is_gone_once_deleted(directory: DirectoryBlobs) -> None:
    directory.put("abc", blobs.RESULT, b"0123456789")
    assert bytes(directory.read("abc", blobs.RESULT) or b"") == b"0123456789"
    assert directory.size("abc", blobs.RESULT) == 10
    with directory.open("abc", blobs.RESULT) as file:  # type: ignore[union-attr]
        assert file.read() == b"0123456789"
    directory.delete("abc")
    assert directory.read("abc", blobs.RESULT) is None and files(directory) == []


def test_a_blob_whose_writer_fails_is_never_there(directory: DirectoryBlobs) -> None:
    with pytest.raises(RuntimeError), directory.writer("abc", blobs.UPLOAD) as out:
        out.write(b"half a body")
        assert directory.read("abc", blobs.UPLOAD) is None  # not before it is whole
        raise RuntimeError("the client went away")
    assert files(directory) == []


def test_a_blob_name_cannot_leave_the_directory(directory: DirectoryBlobs) -> None:
    for job_id, kind in (("../etc/passwd", blobs.ROWS), ("abc", "../x")):
        with pytest.raises(ValueError):
            directory.put(job_id, kind, b"x")


def test_jobs_are_listed_by_the_age_of_their_blobs(directory: DirectoryBlobs) -> None:
    directory.put("old", blobs.ROWS, b"x")
    directory.put("new", blobs.ROWS, b"x")
    an_hour_ago = time.time() - 3600
    os.utime(directory.root / "old.rows", (an_hour_ago, an_hour_ago))
    assert directory.job_ids(older_than_seconds=60) == {"old"}
    assert directory.job_ids(older_than_seconds=0) == {"old", "new"}


def test_a_large_jobs_rows_go_to_the_blob_store_and_come_back_with_its_claim(
    store: JobStore, client: fakeredis.FakeRedis, directory: DirectoryBlobs
) -> None:
    store.create(queued_job("big", rows=4), ROWS.tobytes())
    store.create(queued_job("small", rows=2), ROWS[:2].tobytes())

    assert client.exists(keys.rows("big")) == 0 and client.exists(keys.rows("small")) == 1
    assert files(directory) == ["big.rows"]
    assert store.rows_width(store.get("big")) == 30
    claims, rows = store.claim_with_rows(["big", "small"], max_attempts=3)
    stored = np.frombuffer(rows["big"], np.float32)  # type: ignore[arg-type]
    assert np.array_equal(stored.reshape(4, 30), ROWS)
    assert rows["small"] == ROWS[:2].tobytes()
    assert claims["big"].job.rows_in_blob  # type: ignore[union-attr]
    assert "rows_in_blob" not in store.get("big").public()  # the store's business, not a client's


def test_an_ended_jobs_input_blob_is_removed_and_its_result_kept(
    store: JobStore, directory: DirectoryBlobs
) -> None:
    store.create(queued_job("big", rows=4), ROWS.tobytes())
    claims, _ = store.claim_with_rows(["big"], max_attempts=3)
    store.put_results({"big": b"an arrow stream"})
    running = claims["big"].job
    assert running is not None
    done = lifecycle.succeed(running, {"href": "/v1/jobs/big/result"})

    assert store.store_many([done]) == {"big"}

    assert files(directory) == ["big.result"]
    with store.result_file("big") as found:  # type: ignore[union-attr]
        assert found.read() == b"an arrow stream"


def test_a_cancelled_jobs_input_blob_is_removed(store: JobStore, directory: DirectoryBlobs) -> None:
    store.create(queued_job("big", rows=4), ROWS.tobytes())
    store.update("big", lifecycle.cancel)
    assert files(directory) == []


def test_the_sweep_removes_the_blobs_of_expired_jobs_only(
    store: JobStore, client: fakeredis.FakeRedis, directory: DirectoryBlobs
) -> None:
    store.create(queued_job("kept", rows=4), ROWS.tobytes())
    store.create(queued_job("expired", rows=4), ROWS.tobytes())
    store.put_results({"expired": b"result"})
    directory.put("never-recorded", blobs.UPLOAD, b"a refused upload")
    client.delete(keys.job("expired"))  # what the TTL does

    assert store.sweep_blobs(older_than_seconds=3600) == 0  # too young: may be being written
    assert store.sweep_blobs(older_than_seconds=0) == 2

    assert files(directory) == ["kept.rows"]


def test_deleting_a_job_removes_its_blobs(store: JobStore, directory: DirectoryBlobs) -> None:
    store.create(queued_job("big", rows=4), ROWS.tobytes())
    store.delete("big")
    assert files(directory) == []


def test_a_result_an_earlier_release_kept_in_redis_is_still_served(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    client.set(keys.result("old"), b"stream in redis")
    with store.result_file("old") as found:  # type: ignore[union-attr]
        assert found.read() == b"stream in redis"
    assert store.result_file("none") is None
