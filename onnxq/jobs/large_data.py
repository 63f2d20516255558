"""The job store's part for large data kept apart from the records: results of more rows than
a record carries, and the sweep of blobs whose record is gone (onnxq/jobs/blobs.py)."""

from __future__ import annotations

import io
from typing import BinaryIO

import redis

from onnxq.broker.redis_client import redis_errors_as_unavailable
from onnxq.jobs import blobs as kinds
from onnxq.jobs import keys
from onnxq.jobs.blobs import JobBlobs


class LargeJobData:
    """JobStore's methods for results and blobs (JobStore sets these attributes)."""

    client: redis.Redis
    blobs: JobBlobs | None
    ttl_seconds: int

    def put_results(self, results: dict[str, bytes]) -> None:
        """Store large results (Arrow streams) for as long as their jobs' records are kept;
        written before the records that link them (one left by a record that could not be
        written goes with the TTL: in Redis by expiring, as a blob by sweep_blobs)."""
        if not results:
            return
        if self.blobs is not None:
            for job_id, data in results.items():
                self.blobs.put(job_id, kinds.RESULT, data)
            return
        with redis_errors_as_unavailable(), self.client.pipeline(transaction=False) as pipe:
            for job_id, data in results.items():
                pipe.set(keys.result(job_id), data, ex=self.ttl_seconds)
            pipe.execute()

    def result_file(self, job_id: str) -> BinaryIO | None:
        """A large result stored by put_results, to read; None once it has expired."""
        found = self.blobs.open(job_id, kinds.RESULT) if self.blobs is not None else None
        if found is not None:
            return found
        with redis_errors_as_unavailable():  # where an earlier release, or no blob store, kept it
            data = self.client.get(keys.result(job_id))
        return io.BytesIO(data) if data is not None else None

    def sweep_blobs(self, older_than_seconds: float) -> int:
        """Remove the blobs of jobs whose record is gone (expired, or never written: a refused
        upload, a writer killed), once last written `older_than_seconds` ago; how many jobs'."""
        if self.blobs is None:
            return 0
        job_ids = sorted(self.blobs.job_ids(older_than_seconds))
        if not job_ids:
            return 0
        with redis_errors_as_unavailable(), self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.exists(keys.job(job_id))
            found = pipe.execute()
        gone = [job_id for job_id, exists in zip(job_ids, found, strict=True) if not exists]
        for job_id in gone:
            self.blobs.delete(job_id)
        return len(gone)
