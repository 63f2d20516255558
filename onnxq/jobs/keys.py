"""Every Redis key onnxq uses for jobs, named in one place.

Changing a name here orphans what an older release wrote under the old one:
these names are part of the stored data's format (docs/architecture.md).
"""

from __future__ import annotations

import hashlib

# One JSON value per job (onnxq.jobs.record.dump_job), expiring with the job.
JOB_PREFIX = "onnxq:job:"
# A tiny marker that outlives the record, so an expired job can be told apart
# from one that never existed.
TOMBSTONE_PREFIX = "onnxq:job-existed:"
# A job's validated float32 input matrix, kept out of the Celery message.
ROWS_PREFIX = "onnxq:rows:"
# A large job's result as an Arrow IPC stream, kept out of its record (the record links it).
RESULT_PREFIX = "onnxq:result:"
# Jobs not yet ended, scored by their last change (epoch seconds): what the
# reconciler looks through for jobs whose message was lost.
ACTIVE_JOBS = "onnxq:jobs:active"
# An Idempotency-Key's claim on the job it created.
IDEMPOTENCY_PREFIX = "onnxq:idempotency:"
# Pub/sub: a job's end is announced, in the same script that stores its final state, on the
# channel of the gateway process whose request waits for it (the record's `notify`, set by a
# `Prefer: wait` submit), and on the channel of the process whose waiting poll has marked it
# watched (onnxq/jobs/waiting.py), or on JOBS_ENDED when polls of several processes watch it.
# Nobody else is woken: a job's end costs one wake-up, not one per gateway process.
JOBS_ENDED = "onnxq:jobs:ended"
WAITER_CHANNEL_PREFIX = "onnxq:jobs:ended:"
# "A waiting poll of this process waits for this job": holds the process's channel (or "*": polls
# of several processes, announced on JOBS_ENDED), set by the poll, expiring after its wait.
WATCHED_PREFIX = "onnxq:job-watched:"

# Not onnxq's own: kombu's Redis transport keeps delivered, unacknowledged
# messages in this hash, and the reconciler reads it.
KOMBU_UNACKED = "unacked"


def job(job_id: str) -> str:
    return JOB_PREFIX + job_id


def tombstone(job_id: str) -> str:
    return TOMBSTONE_PREFIX + job_id


def rows(job_id: str) -> str:
    return ROWS_PREFIX + job_id


def result(job_id: str) -> str:
    return RESULT_PREFIX + job_id


def waiter_channel(token: str) -> str:
    """The end announcements of the jobs one gateway process's requests wait for."""
    return WAITER_CHANNEL_PREFIX + token


def watched(job_id: str) -> str:
    return WATCHED_PREFIX + job_id


def idempotency(scope: str, idempotency_key: str) -> str:
    """The claim of one client's (`scope`) key: hashed, as keys may be long or odd."""
    digest = hashlib.sha256(f"{scope}\0{idempotency_key}".encode()).hexdigest()
    return IDEMPOTENCY_PREFIX + digest
