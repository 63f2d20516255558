"""Run rows through a warm session and append them to the prediction log (every protocol)."""

from __future__ import annotations

import time

import numpy as np
import structlog
from flask import g

from gateway.services import current_services
from onnxq.models.results import PredictionResult
from onnxq.models.session import OnnxModel
from onnxq.telemetry import metrics
from onnxq.telemetry.prediction_log import PredictionLog

log = structlog.get_logger("onnxq.gateway")


def predict_and_log(
    model: OnnxModel, matrix: np.ndarray, source: str, outputs: list[str] | None = None
) -> PredictionResult:
    """Predict `matrix` (a model batch: OnnxModel.predict) and log every row with the request
    id; `outputs` are computed beside the answer's own (V2)."""
    g.rows = len(matrix)
    return run_and_log(
        model, matrix, source, current_services().prediction_log, g.request_id, outputs
    )


def run_and_log(
    model: OnnxModel,
    matrix: np.ndarray,
    source: str,
    prediction_log: PredictionLog,
    request_id: str | None,
    outputs: list[str] | None = None,
) -> PredictionResult:
    """The one synchronous prediction of every protocol (v1, V2 over HTTP, gRPC): run, count
    it in the metrics, append its rows to the prediction log."""
    started = time.perf_counter()
    result = model.predict(matrix, outputs)
    seconds = time.perf_counter() - started
    metrics.inference_ran(model.name, source, len(matrix), seconds)
    try:
        prediction_log.record(
            model=model.name,
            version=model.version,
            rows=matrix,
            result=result,
            latency_ms=seconds * 1000,
            request_id=request_id,
            source=source,
        )
    except OSError as exc:
        # The caller's answer is already computed; losing it over a full disk
        # would be worse than one missing log line, which is reported loudly.
        log.error("prediction_log_failed", error=repr(exc))
    return result
