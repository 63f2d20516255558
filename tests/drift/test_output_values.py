"""A regressor's predictions and a tensor model's outputs, profiled and checked like features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from drift import build_profile, compute_drift
from drift.alert import alert_payload
from drift.report_html import render_html
from onnxq.models.results import PredictionResult
from onnxq.telemetry.prediction_log import PredictionLog


def regression_result(predictions: np.ndarray, targets: list[str]) -> PredictionResult:
    values = predictions.tolist()
    return PredictionResult("regression", {"predictions": values}, {"targets": targets})


def tensor_result(logits: np.ndarray, embedding: np.ndarray) -> PredictionResult:
    columns = {"logits": logits.tolist(), "embedding": embedding.tolist()}
    return PredictionResult("tensor", columns)


def log_regression(log: PredictionLog, features: np.ndarray, predictions: np.ndarray, targets):
    for start in range(0, len(features), 500):
        log.record(
            model="r",
            version=1,
            rows=features[start : start + 500].astype(np.float32),
            result=regression_result(predictions[start : start + 500], targets),
            latency_ms=1.0,
            source="sync",
        )


def test_a_regressors_shifted_predictions_are_drift_its_steady_features_are_not(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3000, 2))
    reference = rng.normal(100.0, 10.0, 3000)
    profile = build_profile(
        pd.DataFrame(features, columns=["a", "b"]),
        outputs=regression_result(reference, ["price"]).profile_outputs(),
        outputs_source="held-out",
        model="r",
        version=1,
    )
    assert [(v.feature.name, v.path) for v in profile.values] == [("prediction", ["prediction"])]

    log_regression(
        PredictionLog(tmp_path),
        rng.normal(size=(2000, 2)),
        rng.normal(112.0, 10.0, 2000),
        ["price"],
    )
    report = compute_drift(profile, tmp_path, "r", version=1)

    assert report.rows == 2000
    assert [output.name for output in report.outputs if output.drifted] == ["prediction"]
    assert report.drifted == []  # no input feature moved
    assert [f.verdict for f in report.features] == ["stable", "stable"]
    assert alert_payload(report)["outputs"][0]["name"] == "prediction"


def test_each_target_of_a_multi_output_regressor_is_an_output_of_its_own(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    reference = np.c_[rng.normal(0, 1, 3000), rng.normal(50, 5, 3000)]
    profile = build_profile(
        pd.DataFrame(rng.normal(size=(3000, 1)), columns=["a"]),
        outputs=regression_result(reference, ["low", "high"]).profile_outputs(),
        outputs_source="held-out",
    )
    current = np.c_[rng.normal(0, 1, 2000), rng.normal(58, 5, 2000)]
    log_regression(PredictionLog(tmp_path), rng.normal(size=(2000, 1)), current, ["low", "high"])

    report = compute_drift(profile, tmp_path, "r", version=1)

    assert [v.feature.name for v in profile.values] == ["prediction[low]", "prediction[high]"]
    verdicts = {output.name: output.verdict for output in report.outputs}
    assert verdicts == {"prediction[low]": "stable", "prediction[high]": "drift"}


def test_a_tensor_model_is_profiled_by_its_outputs_and_says_what_it_skips(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    logits, embedding = rng.normal(size=(3000, 3)), rng.normal(size=(3000, 64))
    skipped = {"image": "a [N, 1, 28, 28] tensor: not profiled"}
    profile = build_profile(
        pd.DataFrame(),
        outputs=tensor_result(logits, embedding).profile_outputs(),
        outputs_source="held-out",
        skipped=skipped,
    )
    assert profile.features == [] and profile.rows == 3000
    assert [v.feature.name for v in profile.values] == ["logits[0]", "logits[1]", "logits[2]"]
    assert set(profile.skipped) == {"image", "embedding"}
    assert "64 values a row" in profile.skipped["embedding"]

    current = rng.normal(size=(2000, 3))
    current[:, 2] += 1.5
    log = PredictionLog(tmp_path)
    images = np.zeros(2000, dtype=[("image", np.float32, (1, 28, 28))])
    log.record(
        model="t",
        version=1,
        rows=images,
        result=tensor_result(current, rng.normal(size=(2000, 64))),
        latency_ms=1.0,
        source="job",
        job_id="j1",
    )
    report = compute_drift(profile, tmp_path, "t", version=1)

    assert report.rows == 2000 and report.corrupt_lines == 0
    assert [output.name for output in report.outputs if output.drifted] == ["logits[2]"]
    assert report.skipped == profile.skipped
    page = render_html(report)
    assert "1</b> of 3 model outputs drifted: logits[2]" in page
    assert "<b>embedding</b>: output of 64 values a row" in page
    assert "<h2>Features</h2>" not in page  # it has none
