"""Logged predictions of the demo model, written with onnxq's own PredictionLog, for drift tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer

from onnxq.models.repository import ModelRepository
from onnxq.telemetry.prediction_log import PredictionLog

SHIFTED = "mean radius"  # feature 0


def log_demo_predictions(
    model_dir: Path,
    log_dir: Path,
    rows: int,
    *,
    shift: float = 1.0,
    missing: dict[int, float] | None = None,
    seed: int = 0,
) -> None:
    """Log ``rows`` training rows drawn at random, with feature 0 multiplied by ``shift`` and
    the features in ``missing`` blanked (NaN, logged as null) at the given rates."""
    rng = np.random.default_rng(seed)
    data = load_breast_cancer().data.astype(np.float32)
    sample = data[rng.integers(0, len(data), rows)].copy()
    sample[:, 0] *= shift
    for column, rate in (missing or {}).items():
        sample[rng.random(rows) < rate, column] = np.nan
    model = ModelRepository(model_dir).get("breast-cancer")
    log = PredictionLog(log_dir)
    for start in range(0, rows, 250):
        batch = sample[start : start + 250]
        result = model.predict(np.nan_to_num(batch))
        log.record(
            model="breast-cancer",
            version=1,
            rows=batch,
            result=result,
            latency_ms=1.0,
            source="sync",
        )
