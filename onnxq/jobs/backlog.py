"""How much work is outstanding: the signal the worker autoscaler (KEDA) and dashboards read.

Both numbers come from the active index (keys.ACTIVE_JOBS), which holds every job not yet ended
(queued, held by a worker's micro-batch, or running), scored by its last change:

- `outstanding` is its size: jobs a worker has taken but not finished still count, so scaling
  workers down never forgets a job that is being run;
- `oldest_age_seconds` is how long ago its lowest score was. For a queued job the last change is
  its submit, for a running one its start; so this is the age of the oldest job still waiting
  whenever anything waits, and otherwise how long the longest-running job has run. Good enough for
  an alert or a scaling rule, and it costs no scan of the set.

A job whose record expired while it never ended stays in the index until beat's reconciler drops
it (within ONNXQ_RECONCILE_INTERVAL_SECONDS once it is ONNXQ_RECONCILE_STALE_SECONDS old), so
without beat the count could only grow: beat is part of the deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from onnxq.broker.redis_client import redis_errors_as_unavailable
from onnxq.jobs import keys


@dataclass(frozen=True)
class Backlog:
    outstanding: int
    """Jobs not yet ended: queued, taken by a worker, or running."""

    oldest_age_seconds: float
    """Seconds since the oldest last change among them; 0 when there are none."""


def read_backlog(client: Any, now: datetime) -> Backlog:
    """The backlog as of `now`, in one round trip (QueueUnavailable when Redis cannot answer)."""
    with redis_errors_as_unavailable():
        # One MULTI: the count and the oldest entry are of the same moment of the set.
        pipe = client.pipeline(transaction=True)
        pipe.zcard(keys.ACTIVE_JOBS)
        pipe.zrange(keys.ACTIVE_JOBS, 0, 0, withscores=True)
        count, oldest = pipe.execute()
    if not oldest:
        return Backlog(outstanding=int(count), oldest_age_seconds=0.0)
    _, score = oldest[0]
    # A clock a little behind a writer's would make a fresh job's age negative: never below 0.
    age = max(0.0, now.timestamp() - float(score))
    return Backlog(outstanding=int(count), oldest_age_seconds=round(age, 3))
