"""compute_drift end to end: a profile from training data against a real JSONL prediction log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drift import DriftReport, ReferenceProfile, build_profile, compute_drift
from onnxq.models.results import PredictionResult
from onnxq.telemetry.prediction_log import PredictionLog
from tests.support.prediction_log import append, log_line

FEATURES = ["shifted", "steady", "colour"]


def training_frame(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "shifted": rng.normal(0.0, 1.0, rows),
            "steady": rng.normal(10.0, 2.0, rows),
            # a category code: the prediction log holds float32 features only
            "colour": rng.choice([0, 1, 2], rows, p=[0.5, 0.3, 0.2]),
        }
    )


def record(log: PredictionLog, frame: pd.DataFrame, rng: np.random.Generator) -> None:
    """Log the rows through onnxq's own PredictionLog, in batches like the gateway does."""
    for start in range(0, len(frame), 250):
        batch = frame.iloc[start : start + 250]
        p = rng.random(len(batch))
        result = PredictionResult.classification(
            labels=[int(x > 0.5) for x in p],
            probabilities=[[1 - float(x), float(x)] for x in p],
            classes=[0, 1],
        )
        rows = batch.to_numpy(dtype=np.float32)
        log.record(model="m", version=1, rows=rows, result=result, latency_ms=1.0, source="sync")


@pytest.fixture
def profile() -> ReferenceProfile:
    rng = np.random.default_rng(10)
    p = rng.random(3000)
    return build_profile(
        training_frame(3000, rng),
        outputs={"probabilities": np.c_[1 - p, p], "label": (p > 0.5).astype(int)},
        outputs_source="held-out",
        categorical=["colour"],
        model="m",
        version=1,
    )


def test_a_shifted_feature_is_flagged_drift_and_unshifted_ones_stable(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    rng = np.random.default_rng(11)
    current = training_frame(2000, rng)
    current["shifted"] += 1.0  # one standard deviation
    record(PredictionLog(tmp_path), current, rng)

    report = compute_drift(profile, tmp_path, "m", version=1)

    assert report.rows == 2000
    assert report.drifted == ["shifted"]
    assert report.features[0].name == "shifted"  # drifted first
    shifted = report.feature("shifted")
    assert shifted.psi is not None and shifted.noise_level is not None
    assert shifted.psi > 0.2 and shifted.psi > shifted.noise_level
    for name in ("steady", "colour"):
        steady = report.feature(name)
        assert steady.verdict == "stable"
        assert steady.psi is not None and steady.psi < 0.05
    assert {r.name for r in report.outputs} == {"__probability__", "__label__"}
    assert all(r.verdict == "stable" for r in report.outputs)
    # the report is plain JSON
    assert DriftReport.model_validate_json(report.model_dump_json()) == report


def test_a_window_of_40_rows_says_insufficient_data_and_a_large_shift_in_200_is_drift(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    rng = np.random.default_rng(12)
    current = training_frame(40, rng)
    current["shifted"] += 5.0
    record(PredictionLog(tmp_path), current, rng)

    report = compute_drift(profile, tmp_path, "m")

    assert report.rows == 40  # under 5 rows per bin
    assert {r.verdict for r in report.features} == {"insufficient data"}
    assert report.feature("shifted").psi is not None  # still computed, just not judged
    # ... but most values beyond the training maximum are shown on 40 rows
    assert report.drifted == ["shifted"] and report.feature("shifted").unseen_verdict == "drift"

    more = training_frame(160, rng)
    more["shifted"] += 5.0
    record(PredictionLog(tmp_path), more, rng)
    report = compute_drift(profile, tmp_path, "m")
    assert report.drifted == ["shifted"]  # shown at the family-wise level on 200 rows
    # the others are not vouched for as stable on so few rows
    assert {r.verdict for r in report.features if r.name != "shifted"} == {"insufficient data"}
    assert report.feature("steady").minimum_rows > 200


def test_a_new_category_code_and_missing_values_show_in_the_report(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    rng = np.random.default_rng(13)
    lines = []
    for i in range(1000):
        colour = 7.0 if i % 2 else float(rng.choice([0, 1, 2]))  # 7 never seen in training
        steady = None if i % 10 == 0 else float(rng.normal(10.0, 2.0))
        lines.append(log_line(now - timedelta(hours=1), [float(rng.normal()), steady, colour]))
    append(tmp_path, "2026-11-25", lines)

    report = compute_drift(profile, tmp_path, "m", days=1, now=now)

    colour = report.feature("colour")
    assert colour.bins[:3] == ["0", "1", "2"]  # training codes; the logged 0.0 is category 0
    assert sum(colour.current_counts[:3]) == 500  # every logged 0.0, 1.0, 2.0 matched
    assert colour.verdict == "drift"
    assert colour.bins[-1] == "__unseen__"
    assert colour.current_counts[-1] == 500
    assert colour.current_shares[-1] == pytest.approx(0.5)
    steady = report.feature("steady")
    assert steady.current_missing == 100
    assert steady.current_missing_rate == pytest.approx(0.1)
    assert steady.current_rows == 900
    assert steady.verdict == "stable"
    assert report.window_end == now
    assert report.window_start == now - timedelta(days=1)


def test_the_breast_cancer_training_data_profiles_into_a_few_kilobytes(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    profile = build_profile(
        data.data, outputs={"label": data.target.to_numpy()}, outputs_source="held-out"
    )
    path = profile.save(tmp_path / "profile.json")
    assert len(profile.features) == 30
    assert path.stat().st_size < 50_000
    assert ReferenceProfile.load(path) == profile
