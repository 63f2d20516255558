"""Run rows through a warm session and append them to the prediction log (sync and V2 routes)."""

from __future__ import annotations

import time

import numpy as np
import structlog
from flask import g

from gateway.services import current_services
from onnxq.models.results import PredictionResult
from onnxq.models.session import OnnxModel
from onnxq.telemetry import metrics

log = structlog.get_logger("onnxq.gateway")


def predict_and_log(
    model: OnnxModel, matrix: np.ndarray, source: str, outputs: list[str] | None = None
) -> PredictionResult:
    """Predict `matrix` (a model batch: OnnxModel.predict) and log every row with the request
    id; `outputs` are computed beside the answer's own (V2)."""
    g.rows = len(matrix)
    started = time.perf_counter()
    result = model.predict(matrix, outputs)
    seconds = time.perf_counter() - started
    latency_ms = seconds * 1000
    metrics.inference_ran(model.name, source, len(matrix), seconds)
    try:
        current_services().prediction_log.record(
            model=model.name,
            version=model.version,
            rows=matrix,
            result=result,
            latency_ms=latency_ms,
            request_id=g.request_id,
            source=source,
        )
    except OSError as exc:
        # The caller's answer is already computed; losing it over a full disk
        # would be worse than one missing log line, which is reported loudly.
        log.error("prediction_log_failed", error=repr(exc))
    return result
