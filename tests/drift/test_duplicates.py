"""A job run twice (at-least-once delivery) logs its rows twice; the reader counts each once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from drift.log_reader import read_window
from drift.profile import build_profile
from onnxq.models.results import PredictionResult
from onnxq.telemetry.prediction_log import PredictionLog


@pytest.fixture
def profile():
    rng = np.random.default_rng(3)
    return build_profile(rng.normal(size=(2000, 3)), feature_names=["a", "b", "c"])


def log_jobs(log_dir: Path, job_runs: list[tuple[str, np.ndarray]]) -> None:
    log = PredictionLog(log_dir)
    for job_id, rows in job_runs:
        result = PredictionResult.classification([0] * len(rows), [[0.5, 0.5]] * len(rows), [0, 1])
        log.record(
            model="m",
            version=1,
            rows=rows,
            result=result,
            latency_ms=1.0,
            job_id=job_id,
            source="job",
        )


@pytest.mark.parametrize("chunk_size", [10_000, 1])  # chunks of the earlier JSONL layout only
def test_a_job_logged_twice_counts_once(tmp_path: Path, profile, chunk_size: int) -> None:
    rng = np.random.default_rng(5)
    first, second = rng.normal(size=(4, 3)), rng.normal(size=(2, 3))
    # job-a runs, job-b runs, job-a runs again (redelivered after its worker died).
    log_jobs(tmp_path, [("job-a", first), ("job-b", second), ("job-a", first)])
    sync = PredictionLog(tmp_path)
    result = PredictionResult.classification([0], [[0.5, 0.5]], [0, 1])
    for _ in range(2):  # two sync requests with the same row are two predictions
        sync.record(
            model="m",
            version=1,
            rows=first[:1],
            result=result,
            latency_ms=1.0,
            request_id="r",
            source="sync",
        )
    window = read_window(
        profile, tmp_path, "m", now=datetime.now(UTC) + timedelta(seconds=1), chunk_size=chunk_size
    )
    assert window.rows == 4 + 2 + 2
    assert window.duplicate_lines == 4
    assert sum(int(b.counts.sum()) for b in window.features[:1]) == 8


def test_a_run_after_a_segment_cut_short_still_counts_as_a_duplicate(
    tmp_path: Path, profile
) -> None:
    rng = np.random.default_rng(6)
    rows = rng.normal(size=(3, 3))
    log_jobs(tmp_path, [("job-a", rows)])
    [path] = tmp_path.rglob("*.arrows")
    with path.open("ab") as handle:
        handle.write(b"\xff\xff\xff\xff\x40\x00\x00\x00{not")  # a write cut short
    log_jobs(tmp_path, [("job-a", rows)])  # the redelivery, in another process's segment
    window = read_window(profile, tmp_path, "m", now=datetime.now(UTC) + timedelta(seconds=1))
    assert (window.rows, window.duplicate_lines, window.corrupt_lines) == (3, 3, 1)
