"""drift reads the segments PredictionLog writes: the same counts as the earlier JSONL lines of the
same rows, only the window's rows of the asked model version, and a cut segment's whole batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from drift import build_profile, read_window
from drift.profile import ReferenceProfile
from onnxq.models.results import PredictionResult
from onnxq.telemetry.prediction_log import PredictionLog
from tests.support.prediction_log import append, log_line, prediction_lines


def counts(window) -> list:
    return [b.counts.tolist() for b in window.features] + [
        (b.counts.tolist(), b.missing) for b in window.outputs
    ]


@pytest.fixture
def profile(number_and_code_profile: ReferenceProfile) -> ReferenceProfile:
    return number_and_code_profile


def classified(rows: int, seed: int) -> tuple[np.ndarray, PredictionResult]:
    rng = np.random.default_rng(seed)
    matrix = np.c_[rng.normal(0.3, 1, rows), rng.integers(0, 4, rows)].astype(np.float32)
    matrix[::17, 0] = np.nan  # a missing value now and then
    p = rng.random(rows).astype(np.float32)
    probabilities = np.c_[1 - p, p].astype(np.float32)
    result = PredictionResult.classification((p > 0.5).astype(int).tolist(), probabilities, [0, 1])
    return matrix, result


def later() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=1)


def test_segments_count_what_the_same_rows_as_jsonl_lines_count(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    matrix, result = classified(500, seed=4)
    PredictionLog(tmp_path / "segments").record(
        model="m", version=1, rows=matrix, result=result, latency_ms=1.0, source="sync"
    )
    now = later()
    lines = [
        log_line(
            now - timedelta(seconds=1),
            [None if np.isnan(v) else float(v) for v in row],
            label=label,
            probabilities=[float(x) for x in probabilities],
            row=index,
        )
        for index, (row, label, probabilities) in enumerate(
            zip(matrix, result.labels, result.probabilities, strict=True)
        )
    ]
    append(tmp_path / "lines", f"{now:%Y-%m-%d}", lines)

    from_segments = read_window(profile, tmp_path / "segments", "m", 1, days=1, now=now)
    from_lines = read_window(profile, tmp_path / "lines", "m", 1, days=1, now=now)
    assert from_segments.rows == from_lines.rows == 500
    assert counts(from_segments) == counts(from_lines)
    assert from_segments.features[0].missing == from_lines.features[0].missing == 30


def test_only_the_asked_model_version_and_window_count(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    log = PredictionLog(tmp_path)
    for model, version, rows in (("m", 1, 10), ("m", 2, 20), ("other", 1, 40)):
        matrix, result = classified(rows, seed=rows)
        log.record(
            model=model, version=version, rows=matrix, result=result, latency_ms=1, source="v2"
        )

    assert read_window(profile, tmp_path, "m", 1, days=1, now=later()).rows == 10
    assert read_window(profile, tmp_path, "m", None, days=1, now=later()).rows == 30
    # The window ends before the rows were logged: they are outside it.
    early = read_window(profile, tmp_path, "m", 1, since=datetime(2020, 1, 1, tzinfo=UTC),
                        now=datetime.now(UTC) - timedelta(hours=1))  # fmt: skip
    assert early.rows == 0


def test_a_row_just_inside_either_end_of_the_window_counts(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    log = PredictionLog(tmp_path)
    matrix, result = classified(3, seed=1)
    log.record(model="m", version=1, rows=matrix, result=result, latency_ms=1, source="sync")
    [batch_ts] = set(_stamps(tmp_path))
    at = datetime.fromisoformat(batch_ts.replace("Z", "+00:00"))
    # The window [at, at + 1 ms) ends on the row's millisecond, and [at - 1 h, at] too.
    assert read_window(profile, tmp_path, "m", 1, since=at, now=at + timedelta(days=1)).rows == 3
    assert read_window(profile, tmp_path, "m", 1, since=at - timedelta(hours=1), now=at).rows == 3
    after = at + timedelta(microseconds=1)
    window = read_window(profile, tmp_path, "m", 1, since=after, now=after + timedelta(days=1))
    assert (window.rows, window.outside_window) == (0, 3)


def _stamps(directory: Path) -> list[str]:
    return [line["ts"] for line in prediction_lines(directory)]


def test_a_batch_of_another_width_is_counted_as_mismatched(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    log = PredictionLog(tmp_path)
    wide = np.zeros((5, 3), dtype=np.float32)
    result = PredictionResult.classification([0] * 5, [[0.5, 0.5]] * 5, [0, 1])
    log.record(model="m", version=1, rows=wide, result=result, latency_ms=1, source="sync")
    window = read_window(profile, tmp_path, "m", 1, days=1, now=later())
    assert (window.rows, window.mismatched_lines) == (0, 5)


def test_a_segment_cut_short_counts_its_whole_batches_and_the_cut(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    log = PredictionLog(tmp_path)
    for seed in (1, 2):
        matrix, result = classified(50, seed=seed)
        log.record(model="m", version=1, rows=matrix, result=result, latency_ms=1, source="sync")
    [path] = tmp_path.rglob("*.arrows")
    path.write_bytes(path.read_bytes()[:-100])
    window = read_window(profile, tmp_path, "m", 1, days=1, now=later())
    assert (window.rows, window.corrupt_lines) == (50, 1)


def test_a_regressors_predictions_are_profiled_from_its_segment(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    training = rng.normal(size=(1000, 2))
    targets = rng.normal(10, 2, size=(1000, 2))
    profile = build_profile(training, outputs={"prediction": targets, "targets": ["a", "b"]},
                            outputs_source="held-out", feature_names=["x", "y"])  # fmt: skip
    log = PredictionLog(tmp_path)
    served = rng.normal(10, 2, size=(200, 2)).astype(np.float32)
    result = PredictionResult("regression", {"predictions": served}, {"targets": ["a", "b"]})
    log.record(model="r", version=1, rows=training[:200], result=result, latency_ms=1,
               source="sync")  # fmt: skip
    window = read_window(profile, tmp_path, "r", 1, days=1, now=later())
    assert window.rows == 200
    assert [int(b.counts.sum()) for b in window.values] == [200, 200]
    expected = profile.values[1].feature.tally(served[:, 1])[0]
    assert window.values[1].counts.tolist() == expected.tolist()


def test_a_tensor_models_outputs_are_profiled_from_its_segment(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(300, 2))
    outputs = {"outputs": [{"logits": row.tolist()} for row in logits]}
    profile = build_profile(
        np.empty((300, 0)), outputs=outputs, outputs_source="held-out", feature_names=[]
    )
    log = PredictionLog(tmp_path)
    served = rng.normal(size=(40, 2)).astype(np.float32)
    result = PredictionResult("tensor", {"logits": served.tolist()}, {})
    inputs = np.zeros(40, dtype=[("t", "f4")])  # a tensor model's inputs are not logged
    log.record(model="t", version=1, rows=inputs, result=result, latency_ms=1, source="sync")
    window = read_window(profile, tmp_path, "t", 1, days=1, now=later())
    assert window.rows == 40
    assert [int(b.counts.sum()) for b in window.values] == [40, 40]
