"""Every Prometheus metric onnxq exports, and the small named hooks that move them.

Views and job code call the hooks (`request_served`, `job_submitted`, ...), never
prometheus_client directly, so names, labels and buckets live only here and in
docs/observability.md.

Under gunicorn and Celery prefork, prometheus_client runs in multiprocess mode:
each process writes its values to files in PROMETHEUS_MULTIPROC_DIR (set up by
onnxq.telemetry.multiprocess_metrics before this module is imported) and a scrape sums
them. Without that variable (unit tests, the Flask dev server) values live in
this process and `exposition` reads the default registry.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from onnxq.jobs.backlog import read_backlog
from onnxq.telemetry.multiprocess_metrics import current_dir

log = structlog.get_logger("onnxq.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Multiprocess mode has no `_created` samples; leave them out in one process too, so a
# scrape looks the same under gunicorn as in the tests.
disable_created_metrics()

# Sync predictions take ~1 ms; anything past 100 ms is already a problem.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
INFERENCE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)
QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

HTTP_REQUESTS = Counter(
    "onnxq_http_requests_total",
    "HTTP requests answered by the gateway, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "onnxq_http_request_duration_seconds",
    "Time from the request reaching Flask to its response, by route template and method.",
    ["route", "method"],
    buckets=REQUEST_BUCKETS,
)
GRPC_REQUESTS = Counter(
    "onnxq_grpc_requests_total",
    "gRPC calls answered by the Open Inference Protocol service, by method and status code.",
    ["method", "code"],
)
GRPC_REQUEST_DURATION = Histogram(
    "onnxq_grpc_request_duration_seconds",
    "Time from a gRPC call reaching onnxq to its answer, by method.",
    ["method"],
    buckets=REQUEST_BUCKETS,
)
JOBS_SUBMITTED = Counter(
    "onnxq_jobs_submitted_total", "Jobs accepted and queued by the gateway.", ["model"]
)
JOBS_SUCCEEDED = Counter(
    "onnxq_jobs_succeeded_total", "Jobs a worker ran and stored as succeeded.", ["model"]
)
JOBS_FAILED = Counter(
    "onnxq_jobs_failed_total",
    "Jobs that ended as failed, by error type (poison_job, timeout, invalid_input, ...).",
    ["model", "error_type"],
)
QUEUE_WAIT = Histogram(
    "onnxq_job_queue_wait_seconds",
    "Time a job waited between its submit and a worker starting it.",
    ["model"],
    buckets=QUEUE_WAIT_BUCKETS,
)
INFERENCE_DURATION = Histogram(
    "onnxq_inference_duration_seconds",
    "Time in session.run for one call (a sync request, or a whole worker micro-batch).",
    ["model", "source"],
    buckets=INFERENCE_BUCKETS,
)
MICROBATCH_JOBS = Histogram(
    "onnxq_microbatch_jobs",
    "Jobs a worker took together in one run (1 = no batching happened).",
    buckets=BATCH_BUCKETS,
)
ROWS_PREDICTED = Counter(
    "onnxq_rows_predicted_total", "Rows run through a model.", ["model", "source"]
)
JOB_WAITERS = Gauge(
    "onnxq_held_polls",
    "Requests waiting for a job to end right now (`?wait=`, `Prefer: wait`).",
    multiprocess_mode="livesum",
)
DRIFT_PSI = Gauge(
    "onnxq_drift_psi",
    "Population stability index of a feature (or model output) in the latest drift check.",
    ["model", "version", "feature"],
    multiprocess_mode="mostrecent",
)
DRIFTED = Gauge(
    "onnxq_drift_drifted",
    "1 when the latest drift check called a feature (or model output) drifted, else 0.",
    ["model", "version", "feature"],
    multiprocess_mode="mostrecent",
)


# --------------------------------------------------------------------------- hooks


# A labelled child is looked up (a lock, a tuple, a dict) on every `labels()`: the hooks on every
# request keep theirs. Label values are bounded (routes, methods, statuses, models, sources).
@functools.lru_cache(maxsize=1024)
def _request_children(route: str, method: str, status: int) -> tuple[Any, Any]:
    return HTTP_REQUESTS.labels(route, method, str(status)), HTTP_REQUEST_DURATION.labels(
        route, method
    )


@functools.lru_cache(maxsize=1024)
def _inference_children(model: str, source: str) -> tuple[Any, Any]:
    return INFERENCE_DURATION.labels(model, source), ROWS_PREDICTED.labels(model, source)


def request_served(route: str, method: str, status: int, seconds: float) -> None:
    count, duration = _request_children(route, method, status)
    count.inc()
    duration.observe(seconds)


@functools.lru_cache(maxsize=256)
def _grpc_children(method: str, code: str) -> tuple[Any, Any]:
    return GRPC_REQUESTS.labels(method, code), GRPC_REQUEST_DURATION.labels(method)


def grpc_request_served(method: str, code: str, seconds: float) -> None:
    count, duration = _grpc_children(method, code)
    count.inc()
    duration.observe(seconds)


def job_submitted(model: str) -> None:
    JOBS_SUBMITTED.labels(model).inc()


def job_started(model: str, waited_seconds: float) -> None:
    QUEUE_WAIT.labels(model).observe(max(0.0, waited_seconds))


def job_succeeded(model: str) -> None:
    JOBS_SUCCEEDED.labels(model).inc()


def job_failed(model: str, error_type: str) -> None:
    JOBS_FAILED.labels(model, error_type).inc()


def inference_ran(model: str, source: str, rows: int, seconds: float) -> None:
    """One session.run (or a chunked series of them) over `rows` rows; source is sync or job."""
    duration, predicted = _inference_children(model, source)
    duration.observe(seconds)
    predicted.inc(rows)


def job_waiter_added() -> None:
    JOB_WAITERS.inc()


def job_waiter_left() -> None:
    JOB_WAITERS.dec()


def microbatch_ran(jobs: int) -> None:
    MICROBATCH_JOBS.observe(jobs)


def record_drift(
    model: str, version: int | str, feature: str, psi: float, drifted: bool = False
) -> None:
    """The drift check's hook: the latest PSI and verdict of one feature of one model version."""
    DRIFT_PSI.labels(model, str(version), feature).set(psi)
    DRIFTED.labels(model, str(version), feature).set(1.0 if drifted else 0.0)


# --------------------------------------------------------------------------- exposition


class QueueDepthCollector(Collector):
    """Reads how many messages wait in each queue at scrape time (one LLEN per queue)."""

    def __init__(self, client: Any, queues: Iterable[str]):
        self.client = client
        self.queues = list(queues)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "onnxq_queue_depth",
            "Messages waiting in a job queue (read at scrape time).",
            labels=["queue"],
        )
        try:
            pipe = self.client.pipeline(transaction=False)
            for queue in self.queues:
                pipe.llen(queue)
            depths = pipe.execute()
        except Exception as exc:  # a scrape must answer even with Redis down
            log.warning("queue_depth_unavailable", error=repr(exc))
            return
        for queue, depth in zip(self.queues, depths, strict=True):
            family.add_metric([queue], float(depth))
        yield family


class BacklogCollector(Collector):
    """Outstanding jobs and the age of the oldest, read at scrape time (onnxq/jobs/backlog.py):
    the worker autoscaler's signal, in Redis, so every gateway process reports the same value."""

    def __init__(self, client: Any):
        self.client = client

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            backlog = read_backlog(self.client, datetime.now(UTC))
        except Exception as exc:  # a scrape must answer even with Redis down
            log.warning("backlog_unavailable", error=repr(exc))
            return
        yield GaugeMetricFamily(
            "onnxq_jobs_outstanding",
            "Jobs not yet ended (queued, taken by a worker or running), read at scrape time.",
            value=backlog.outstanding,
        )
        yield GaugeMetricFamily(
            "onnxq_jobs_oldest_outstanding_age_seconds",
            "Seconds since the oldest last change of a job not yet ended (0 when none), at scrape.",
            value=backlog.oldest_age_seconds,
        )


def scrape_registry() -> CollectorRegistry:
    """What a scrape reads: every process's files in multiprocess mode, else this process."""
    if current_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """The text a scrape gets: this process tree's metrics plus `extra` collectors."""
    text = generate_latest(scrape_registry())
    extras = CollectorRegistry()
    for collector in extra:
        extras.register(collector)
    return text + generate_latest(extras)


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live-gauge files (gunicorn's child_exit, Celery child shutdown)."""
    if current_dir() is not None:
        multiprocess.mark_process_dead(pid)
