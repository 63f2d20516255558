"""The log tidy: days before yesterday gzipped, days past retention removed, every reader still
reading what is kept, once."""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from drift import build_profile, read_window
from onnxq.models.results import PredictionResult
from onnxq.settings import Settings
from onnxq.telemetry.log_retention import tidy_prediction_log
from onnxq.telemetry.prediction_log import PredictionLog
from tests.support.prediction_log import prediction_lines, prediction_log_files

TODAY = date(2026, 12, 10)
KEEP = 7
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def log_days(directory: Path, days_back: list[int]) -> None:
    """Three rows logged at noon of each of those days before TODAY."""
    when = [EPOCH]
    log = PredictionLog(
        directory, clock=lambda: (when[0] - EPOCH) // timedelta(microseconds=1) * 1000
    )
    for back in days_back:
        when[0] = datetime.combine(TODAY - timedelta(days=back), datetime.min.time(), UTC)
        when[0] += timedelta(hours=12)
        rows = np.full((3, 2), back, dtype=np.float32)
        result = PredictionResult.classification([back % 2] * 3, [[0.5, 0.5]] * 3, [0, 1])
        log.record(model="m", version=1, rows=rows, result=result, latency_ms=1.0,
                   job_id=f"job-{back}", source="job")  # fmt: skip
    log.close()


def days_and_names(directory: Path) -> list[tuple[str, str]]:
    return [(p.relative_to(directory).parts[0], p.name.split(".", 1)[1])
            for p in prediction_log_files(directory)]  # fmt: skip


def test_old_days_are_compressed_and_days_past_retention_removed(tmp_path: Path) -> None:
    log_days(tmp_path, [0, 1, 2, KEEP, KEEP + 1, KEEP + 30])
    before = {line["job_id"]: line for line in prediction_lines(tmp_path)}

    report = tidy_prediction_log(tmp_path, KEEP, TODAY)

    day = lambda back: f"{TODAY - timedelta(days=back):%Y-%m-%d}"  # noqa: E731
    assert report.removed_days == [day(KEEP + 30), day(KEEP + 1)]
    assert report.compressed == 2 and 0 < report.bytes_after < report.bytes_before
    assert days_and_names(tmp_path) == [
        (day(KEEP), "arrows.gz"), (day(2), "arrows.gz"), (day(1), "arrows"), (day(0), "arrows"),
    ]  # fmt: skip
    after = {line["job_id"]: line for line in prediction_lines(tmp_path)}
    assert after == {job: line for job, line in before.items() if job in after}
    assert sorted(after) == ["job-0", "job-1", "job-2", f"job-{KEEP}"]


def test_a_second_tidy_changes_nothing(tmp_path: Path) -> None:
    log_days(tmp_path, [0, 3, KEEP + 2])
    tidy_prediction_log(tmp_path, KEEP, TODAY)
    files = days_and_names(tmp_path)
    again = tidy_prediction_log(tmp_path, KEEP, TODAY)
    assert (again.removed_days, again.compressed) == ([], 0)
    assert days_and_names(tmp_path) == files


def test_the_drift_window_reads_compressed_days_and_counts_a_copy_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    profile = build_profile(rng.normal(size=(500, 2)), feature_names=["a", "b"])
    log_days(tmp_path, [1, 2, 3, 4])
    now = datetime.combine(TODAY, datetime.min.time(), UTC)
    counted = read_window(profile, tmp_path, "m", 1, days=KEEP, now=now)
    tidy_prediction_log(tmp_path, KEEP, TODAY)
    assert read_window(profile, tmp_path, "m", 1, days=KEEP, now=now).rows == counted.rows == 12
    # The moment between a tidy's rename and its unlink: both forms exist, one is read.
    [compressed, *_] = [p for p in prediction_log_files(tmp_path) if p.name.endswith(".gz")]
    plain = compressed.with_name(compressed.name.removesuffix(".gz"))
    with gzip.open(compressed) as source, plain.open("wb") as sink:
        shutil.copyfileobj(source, sink)
    assert read_window(profile, tmp_path, "m", 1, days=KEEP, now=now).rows == 12


def test_retention_shorter_than_the_drift_window_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least drift_window_days"):
        Settings(prediction_log_keep_days=3, drift_window_days=7)
