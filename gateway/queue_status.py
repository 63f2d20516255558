"""`GET /v1/queue`: outstanding work as JSON, the worker autoscaler's signal (docs/kubernetes.md).

KEDA's `metrics-api` scaler polls it and reads `outstanding`; the same numbers are gauges on
`/metrics`. It needs an API key like every `/v1` route (KEDA sends one through a
TriggerAuthentication): it tells nothing secret, but an open route that reads Redis on every call
is one more thing anybody could hammer.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, Field

from gateway.openapi import documented
from gateway.responses import describe_error_statuses
from gateway.services import current_services
from onnxq.jobs.backlog import read_backlog
from onnxq.jobs.record import utc_now

bp = Blueprint("queue_status", __name__, url_prefix="/v1")


class QueueStatus(BaseModel):
    outstanding: int = Field(ge=0, description="jobs not yet ended: queued, taken or running")
    oldest_age_seconds: float = Field(
        ge=0,
        description=(
            "seconds since the oldest last change among them (a queued job's submit, a running "
            "one's start); 0 when there are none"
        ),
    )


@bp.get("/queue")
@documented(responses={200: QueueStatus, **describe_error_statuses(401, 503)})
def queue_status() -> ResponseReturnValue:
    """Return how many jobs have not ended yet and how old the oldest is (one Redis round trip)."""
    backlog = read_backlog(current_services().redis, utc_now())
    return jsonify(outstanding=backlog.outstanding, oldest_age_seconds=backlog.oldest_age_seconds)
