"""The reconciler: re-send jobs whose message was lost, so accepted work always ends.

Two windows lose a job's message while its record says `queued` or `running`:
kombu takes a message (BRPOP) and records it as unacknowledged in a second
round trip, so a worker killed in between takes the message with it; and a
predict task that exhausted its transient retries is rejected without requeue.
Beat runs this every `reconcile_interval_seconds`. A job is re-sent when

- it is `queued`, unchanged for `reconcile_stale_seconds`, and no message for it
  is waiting in the queue or held unacknowledged by a consumer; or
- it is `running`, unchanged for longer than the hard time limit plus
  `reconcile_stale_seconds`: no worker can still be running it.

A re-sent job that did run after all is harmless: the claim sees it ended and
skips it, and a job re-sent too often ends as `poison_job` (its attempts count).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
import structlog

from onnxq.broker.redis_client import redis_errors_as_unavailable
from onnxq.errors import JobNotFound
from onnxq.jobs import keys
from onnxq.jobs.queue import JobQueue
from onnxq.jobs.record import Job, JobStatus
from onnxq.jobs.store import JobStore

log = structlog.get_logger("onnxq.reconcile")


@dataclass
class ReconcileReport:
    """What one pass found and did."""

    examined: int = 0
    resent: list[str] = field(default_factory=list)
    forgotten: int = 0  # ended or expired jobs dropped from the active index
    waiting: int = 0  # stale but their message is still in Redis
    queue_too_long: bool = False


def message_task_ids(
    client: redis.Redis, queues: Iterable[str], scan_limit: int
) -> set[str] | None:
    """Task ids of the messages waiting in `queues` or held unacked; None past `scan_limit`."""
    with redis_errors_as_unavailable():
        lengths = [int(client.llen(queue)) for queue in queues]
        if sum(lengths) > scan_limit:
            return None
        raw_messages = [m for queue in queues for m in client.lrange(queue, 0, -1)]
        held = client.hvals(keys.KOMBU_UNACKED)
    ids = {_task_id(json.loads(raw)) for raw in raw_messages}
    ids |= {_task_id(json.loads(raw)[0]) for raw in held}
    return ids


def _task_id(message: dict[str, Any]) -> str:
    return str(message.get("headers", {}).get("id", ""))


@dataclass
class JobReconciler:
    store: JobStore
    queue: JobQueue
    queue_names: list[str]
    stale_seconds: float
    time_limit_seconds: float
    scan_limit: int = 50_000

    def run(self, now: datetime) -> ReconcileReport:
        """One pass over the jobs that have not changed for `stale_seconds`."""
        report = ReconcileReport()
        candidates = self.store.stale_active(self.stale_seconds, now)
        report.examined = len(candidates)
        if not candidates:
            return report
        in_redis = message_task_ids(self.store.client, self.queue_names, self.scan_limit)
        report.queue_too_long = in_redis is None
        forget: list[str] = []
        for job_id in candidates:
            job = self._job(job_id)
            if job is None or job.status.ended:
                forget.append(job_id)
            elif self._lost(job, now, in_redis):
                self.queue.resend(job, self.store.rows_width(job))
                report.resent.append(job_id)
                log.warning(
                    "job_resent",
                    job_id=job_id,
                    status=job.status.value,
                    request_id=job.request_id,
                    model=job.model,
                )
            else:
                report.waiting += 1
        self.store.forget_active(forget)
        report.forgotten = len(forget)
        return report

    def _job(self, job_id: str) -> Job | None:
        try:
            return self.store.get(job_id)
        except JobNotFound:  # expired too (JobExpired is a JobNotFound)
            return None

    def _lost(self, job: Job, now: datetime, in_redis: set[str] | None) -> bool:
        if job.status is JobStatus.RUNNING:
            started = job.started_at or job.submitted_at
            return (now - started).total_seconds() > self.time_limit_seconds + self.stale_seconds
        # Queued: lost only if no message for it is anywhere in Redis. With a
        # queue too long to scan, it is most likely just waiting its turn.
        return in_redis is not None and job.job_id not in in_redis
