"""Job records in Redis: what the gateway answers polls from and the worker writes results to.

Redis I/O, and the blob store (onnxq/jobs/blobs.py) for the input rows of large jobs and their
results: the record's shape is onnxq.jobs.record, its key names onnxq.jobs.keys, and every change
of its state onnxq.jobs.lifecycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import NoReturn

import redis

from onnxq.broker.redis_client import redis_errors_as_unavailable
from onnxq.broker.task_message import Acknowledgement, QueuedMessage
from onnxq.errors import JobExpired, JobNotFound
from onnxq.jobs import blobs as kinds
from onnxq.jobs import keys, lifecycle, scripts
from onnxq.jobs.blobs import JobBlobs
from onnxq.jobs.large_data import LargeJobData
from onnxq.jobs.lifecycle import Claim
from onnxq.jobs.record import Job, dump_job, load_job, utc_now

# A watched mark outlives the wait it was set for by this long (a poll's clock and Redis's).
WATCH_MARGIN = 5


def _loaded(job_ids: list[str], raws: list[bytes | None]) -> dict[str, Job]:
    return {job_id: load_job(raw) for job_id, raw in zip(job_ids, raws, strict=True) if raw}


class JobStore(LargeJobData):
    """One JSON value per job, expiring `ttl_seconds` after its last write.

    Celery's own result backend cannot tell an unknown id from a queued one, so
    onnxq keeps its own record, written before the task is sent.
    """

    # The tombstone outlives the record this many times over.
    tombstone_factor = 7

    def __init__(
        self,
        client: redis.Redis,
        ttl_seconds: int,
        blobs: JobBlobs | None = None,
        inline_rows: int = 10_000,
    ):
        self.client = client
        self.ttl_seconds = ttl_seconds
        # Without blobs (unit tests), every job's rows and result are kept in Redis.
        self.blobs = blobs
        # A job of more rows than this keeps its rows (and result) in `blobs`.
        self.inline_rows = inline_rows
        # No round trip here: EVALSHA, loaded on first use.
        self._create = client.register_script(scripts.CREATE)
        self._claim = client.register_script(scripts.CLAIM)
        self._store = client.register_script(scripts.STORE)
        self._watch = client.register_script(scripts.WATCH)

    def create(
        self, job: Job, rows: bytes | memoryview | None = None, message: QueuedMessage | None = None
    ) -> None:
        """Write a new job record (and its validated input rows, and its broker message, when
        given) in one script: all of it is written, or none (nothing if the id exists).

        The rows of a job of more than `inline_rows` rows go to the blob store first (a job
        recorded with `rows_in_blob` has put them there itself)."""
        if rows is not None and self.blobs is not None and job.rows > self.inline_rows:
            self.blobs.put(job.job_id, kinds.ROWS, rows)
            job, rows = job.model_copy(update={"rows_in_blob": True}), None
        try:
            self._create_record(job, rows, message)
        except Exception:
            if job.rows_in_blob and self.blobs is not None:
                self.blobs.delete(job.job_id)
            raise

    def _create_record(
        self, job: Job, rows: bytes | memoryview | None, message: QueuedMessage | None
    ) -> None:
        with redis_errors_as_unavailable():
            created = self._create(
                keys=[
                    keys.job(job.job_id),
                    keys.rows(job.job_id),
                    keys.tombstone(job.job_id),
                    keys.ACTIVE_JOBS,
                    message.key if message is not None else "",
                ],
                args=[
                    dump_job(job),
                    self.ttl_seconds,
                    self.ttl_seconds * self.tombstone_factor,
                    job.submitted_at.timestamp(),
                    job.job_id,
                    "0" if rows is None else "1",
                    b"" if rows is None else rows,
                    "0" if message is None else "1",
                    b"" if message is None else message.payload,
                ],
            )
        if not created:
            raise ValueError(f"job {job.job_id} already exists")

    def get(self, job_id: str) -> Job:
        with redis_errors_as_unavailable():
            raw = self.client.get(keys.job(job_id))
            if raw is None:
                self._raise_missing(job_id)
        return load_job(raw)

    def get_watched(self, job_id: str, seconds: float, watcher: str) -> Job:
        """Read a job a waiting poll waits for, having first marked it watched for `seconds` by
        the gateway process whose channel is `watcher`: its end is then announced there too
        (one round trip)."""
        found = self.watch_many([job_id], seconds, watcher)
        if job_id not in found:
            with redis_errors_as_unavailable():
                self._raise_missing(job_id)
        return found[job_id]

    def get_many(self, job_ids: list[str]) -> dict[str, Job]:
        """The jobs of these ids that exist, in one MGET (missing and expired ones left out)."""
        if not job_ids:
            return {}
        with redis_errors_as_unavailable():
            raws = self.client.mget([keys.job(job_id) for job_id in job_ids])
        return _loaded(job_ids, raws)

    def watch_many(self, job_ids: list[str], seconds: float, watcher: str) -> dict[str, Job]:
        """`get_many`, each job first marked watched for `seconds` by `watcher` (a gateway
        process's channel), in one script (scripts.WATCH)."""
        if not job_ids:
            return {}
        marks = [keys.watched(job_id) for job_id in job_ids]
        records = [keys.job(job_id) for job_id in job_ids]
        lifetime = max(1, math.ceil(seconds)) + WATCH_MARGIN
        with redis_errors_as_unavailable():
            raws = self._watch(keys=marks + records, args=[watcher, lifetime])
        return _loaded(job_ids, raws)

    def _raise_missing(self, job_id: str) -> NoReturn:
        if self.client.exists(keys.tombstone(job_id)):
            raise JobExpired(job_id, self.ttl_seconds)
        raise JobNotFound(job_id)

    def delete(self, job_id: str) -> None:
        with redis_errors_as_unavailable(), self.client.pipeline() as pipe:
            pipe.delete(
                keys.job(job_id), keys.tombstone(job_id), keys.rows(job_id), keys.result(job_id)
            )
            pipe.zrem(keys.ACTIVE_JOBS, job_id)
            pipe.execute()
        if self.blobs is not None:
            self.blobs.delete(job_id)

    def update(self, job_id: str, change: Callable[[Job], Job]) -> Job:
        """Apply `change` (a lifecycle step) to the stored job atomically (WATCH/MULTI)."""
        key = keys.job(job_id)
        with redis_errors_as_unavailable(), self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        self._raise_missing(job_id)
                    job = change(load_job(raw))
                    pipe.multi()
                    record = dump_job(job)
                    pipe.set(key, record, ex=self.ttl_seconds)
                    if job.status.ended:  # a cancel: rare, so every waiting poll is told
                        pipe.zrem(keys.ACTIVE_JOBS, job_id)
                        message = scripts.ended_message(job_id, record)
                        if job.notify:
                            pipe.publish(job.notify, message)
                        pipe.publish(keys.JOBS_ENDED, message)
                    pipe.execute()
                    if job.status.ended:
                        self._inputs_done([job])
                    return job
                except redis.WatchError:
                    continue

    def claim_many(
        self, job_ids: list[str], max_attempts: int, worker: str | None = None
    ) -> dict[str, Claim]:
        """Apply one delivery's claim (lifecycle.claim) to each job."""
        return self.claim_with_rows(job_ids, max_attempts, worker)[0]

    def claim_with_rows(
        self,
        job_ids: list[str],
        max_attempts: int,
        worker: str | None = None,
        known: dict[str, tuple[bytes | None, bytes | None]] | None = None,
    ) -> tuple[dict[str, Claim], dict[str, bytes | None]]:
        """Claim the jobs (lifecycle.claim) and return their stored input rows too.

        Two round trips for the whole batch: one read of the records and rows (none for the
        jobs in `known`, whose record and rows were read as their messages were taken), then one
        script that writes each claim only if its record is still what was read (a job
        cancelled, or finished by an earlier delivery, in between is read and claimed again).
        """
        claims: dict[str, Claim] = {}
        rows: dict[str, bytes | None] = {}
        pending = list(dict.fromkeys(job_ids))  # a job delivered twice in one batch: once
        read = dict(known or {})
        with redis_errors_as_unavailable():
            while pending:
                read.update(self._read([job_id for job_id in pending if job_id not in read]))
                now, writes = utc_now(), []
                for job_id in pending:
                    raw, rows[job_id] = read.pop(job_id)
                    found = load_job(raw) if raw is not None else None
                    if found is not None and found.rows_in_blob and self.blobs is not None:
                        rows[job_id] = self.blobs.read(job_id, kinds.ROWS)
                    claim = claims[job_id] = lifecycle.claim(found, now, max_attempts, worker)
                    if claim.changed and claim.job is not None and raw is not None:
                        writes.append((job_id, raw, claim.job))
                pending = self._write_claims(writes, now) if writes else []
        return claims, rows

    def _read(self, job_ids: list[str]) -> dict[str, tuple[bytes | None, bytes | None]]:
        """Records and rows of these jobs, in one MGET."""
        if not job_ids:
            return {}
        values = self.client.mget(
            [keys.job(job_id) for job_id in job_ids] + [keys.rows(job_id) for job_id in job_ids]
        )
        n = len(job_ids)
        return {job_id: (values[i], values[n + i]) for i, job_id in enumerate(job_ids)}

    def _write_claims(self, writes: list[tuple[str, bytes, Job]], now: datetime) -> list[str]:
        """Write claimed records (job id, record as read, claimed job); the ids whose record
        changed since it was read."""
        job_keys = [
            keys.ACTIVE_JOBS,
            *scripts.record_rows_watched([job_id for job_id, _, _ in writes]),
        ]
        args: list[str | int | float | bytes] = [self.ttl_seconds, now.timestamp()]
        for job_id, read, job in writes:
            record = dump_job(job)
            ended = scripts.ended_message(job_id, record) if job.status.ended else b""
            args += [read, record, job_id, ended, job.notify or ""]
        changed = self._claim(keys=job_keys, args=[keys.JOBS_ENDED, *args])
        return [writes[int(i) - 1][0] for i in changed]

    def store_many(self, jobs: list[Job], acknowledge: Acknowledgement | None = None) -> set[str]:
        """Write final states of jobs this worker claimed, in one script (one command, however
        many jobs: a pipeline paid redis-py's per-command cost three times per job), and
        acknowledge the broker messages that carried them in the same script, when given.

        Returns the ids written; a record that expired meanwhile is not recreated.
        """
        if not jobs and not (acknowledge and acknowledge.tags):
            return set()
        held = acknowledge or Acknowledgement(keys.ACTIVE_JOBS, keys.ACTIVE_JOBS, [])
        job_keys = [keys.ACTIVE_JOBS, held.hash_key, held.index_key]
        job_keys += scripts.record_rows_watched([job.job_id for job in jobs])
        args: list[str | int | bytes] = [keys.JOBS_ENDED, self.ttl_seconds]
        for job in jobs:
            record = dump_job(job)
            args += [
                job.job_id,
                record,
                scripts.ended_message(job.job_id, record),
                job.notify or "",
            ]
        args += held.tags
        with redis_errors_as_unavailable():
            written = self._store(keys=job_keys, args=args)
        self._inputs_done(jobs)
        return {job.job_id for job, ok in zip(jobs, written, strict=True) if ok}

    def _inputs_done(self, jobs: list[Job]) -> None:
        """Remove the input blobs of ended jobs (their rows in Redis go in the same script)."""
        for job in jobs:
            if job.rows_in_blob and self.blobs is not None:
                self.blobs.delete(job.job_id, kinds.ROWS)

    def stale_active(self, idle_seconds: float, now: datetime, limit: int = 1000) -> list[str]:
        """Ids of jobs not ended whose last change is more than `idle_seconds` old."""
        cutoff = now.timestamp() - idle_seconds
        with redis_errors_as_unavailable():
            ids = self.client.zrangebyscore(keys.ACTIVE_JOBS, "-inf", cutoff, start=0, num=limit)
        return [i.decode() if isinstance(i, bytes) else i for i in ids]

    def forget_active(self, job_ids: list[str]) -> None:
        """Drop jobs from the active index (ended, or their record expired)."""
        if job_ids:
            with redis_errors_as_unavailable():
                self.client.zrem(keys.ACTIVE_JOBS, *job_ids)

    def rows_width(self, job: Job) -> int | None:
        """Features per row of a job's stored input matrix; None when the rows are gone."""
        if job.rows_in_blob and self.blobs is not None:
            size = self.blobs.size(job.job_id, kinds.ROWS) or 0
            return size // 4 // job.rows if size and job.rows else None
        with redis_errors_as_unavailable():
            size = int(self.client.strlen(keys.rows(job.job_id)))
        return size // 4 // job.rows if size and job.rows else None
