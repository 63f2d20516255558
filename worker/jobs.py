"""The prediction job as a plain function: the Celery task calls it, and so do unit tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from onnxq.errors import JobNotFound, OnnxqError, QueueUnavailable
from onnxq.jobs import Job, JobStore
from onnxq.prediction_log import PredictionLog
from onnxq.repository import ModelRepository
from onnxq.schemas import ordered_rows, rows_to_matrix

log = structlog.get_logger("onnxq.worker")


def run_predict_job(
    *,
    job_id: str,
    model: str,
    version: int,
    instances: list[Any],
    repository: ModelRepository,
    store: JobStore,
    prediction_log: PredictionLog,
    request_id: str | None = None,
    on_end: Callable[[Job], None] | None = None,
) -> Job | None:
    """Run one job and store its outcome; return the final job (None if its record is gone).

    `on_end` is called once, by the run that ended the job (not by a skipped duplicate).
    """
    started = time.perf_counter()
    fields: dict[str, Any] = {
        "job_id": job_id,
        "request_id": request_id,
        "model": model,
        "version": version,
        "rows": len(instances),
    }
    try:
        claimed = store.mark_running(job_id)
    except JobNotFound:
        return _dropped(fields, started)
    if claimed is None:
        # Cancelled while queued, or a duplicate delivery of a job that ended.
        job = store.get(job_id)
        log.info("job", status="skipped", job_status=job.status.value,
                 duration_ms=_ms_since(started), **fields)  # fmt: skip
        return job
    try:
        onnx_model = repository.get(model, version)
        rows = rows_to_matrix(instances, onnx_model.manifest)
        predict_started = time.perf_counter()
        result = onnx_model.predict(rows)
        latency_ms = (time.perf_counter() - predict_started) * 1000
        prediction_log.record(
            model=model,
            version=version,
            rows=ordered_rows(instances, onnx_model.manifest),
            result=result,
            latency_ms=latency_ms,
            request_id=request_id,
            job_id=job_id,
            source="job",
        )
    except QueueUnavailable:
        raise  # Redis trouble is not the job's fault: let the task layer retry it.
    except OnnxqError as exc:
        ended = _fail(store, fields, started, exc.error_type, exc.message)
    except Exception as exc:  # a model or runtime fault: record it, never loop on it
        log.exception("job_error", **fields)
        ended = _fail(store, fields, started, type(exc).__name__, str(exc))
    else:
        ended = _succeed(store, fields, started, {"model": model, "version": version,
                                                  **result.to_dict()})  # fmt: skip
    if ended is not None and on_end is not None:
        on_end(ended)
    return ended


def _succeed(
    store: JobStore, fields: dict[str, Any], started: float, result: dict[str, Any]
) -> Job | None:
    try:
        job = store.mark_succeeded(fields["job_id"], result)
    except JobNotFound:
        return _dropped(fields, started)
    log.info("job", status=job.status.value, duration_ms=_ms_since(started), **fields)
    return job


def _fail(
    store: JobStore, fields: dict[str, Any], started: float, kind: str, message: str
) -> Job | None:
    try:
        job = store.mark_failed(fields["job_id"], kind, message)
    except JobNotFound:
        return _dropped(fields, started)
    log.warning(
        "job",
        status=job.status.value,
        error_type=kind,
        error=message,
        duration_ms=_ms_since(started),
        **fields,
    )
    return job


def _dropped(fields: dict[str, Any], started: float) -> None:
    # The record expired or was deleted while the job ran: nobody can poll
    # the outcome any more, so say so once and let the task end quietly.
    log.warning("job", status="dropped", reason="job record expired while running",
                duration_ms=_ms_since(started), **fields)  # fmt: skip
    return None


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
