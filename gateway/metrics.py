"""`/metrics` in Prometheus text format, and the hook that counts and times every request."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, g, request

from gateway.services import current_services
from onnxq.broker.celery_app import callback_queue
from onnxq.telemetry import metrics

bp = Blueprint("metrics", __name__)

# Requests that matched no route are counted under one label, never under their raw
# path: a scanner trying thousands of URLs must not make thousands of time series.
UNMATCHED_ROUTE = "unmatched"


@bp.get("/metrics")
def scrape() -> Response:
    """Every gateway process's metrics (multiprocess mode) plus queue depths and backlog now."""
    services = current_services()
    queues = [services.settings.queue_name, callback_queue(services.settings)]
    collectors = [
        metrics.QueueDepthCollector(services.redis, queues),
        metrics.BacklogCollector(services.redis),
    ]
    body = metrics.exposition(collectors)
    return Response(body, mimetype=None, content_type=metrics.CONTENT_TYPE)


def _count_request(response: Response) -> Response:
    rule = request.url_rule
    started = g.get("started")
    seconds = time.perf_counter() - started if started is not None else 0.0
    metrics.request_served(
        rule.rule if rule is not None else UNMATCHED_ROUTE,
        request.method,
        response.status_code,
        seconds,
    )
    return response


def init_app(app: Flask) -> None:
    app.after_request(_count_request)
