"""onnxq.telemetry.metrics hooks and exposition, in this process and in multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from onnxq.devtools.metrics_text import sample
from onnxq.telemetry import metrics


def test_record_drift_sets_the_latest_psi_of_a_feature() -> None:
    metrics.record_drift("drifty", 3, "mean radius", 0.31)
    metrics.record_drift("drifty", 3, "mean radius", 0.12)
    text = metrics.exposition().decode()
    assert sample(text, "onnxq_drift_psi", model="drifty", version="3", feature="mean radius") == (
        0.12
    )


def test_metric_names_follow_prometheus_conventions() -> None:
    text = metrics.exposition().decode()
    families = [line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE onnxq")]
    assert families
    for name, kind in families:
        assert (kind == "counter") == name.endswith("_total"), name
        if "duration" in name or "wait" in name:
            assert name.endswith("_seconds"), name


RECORD = """
import sys
from onnxq.telemetry import metrics
metrics.job_submitted("m")
metrics.inference_ran("m", "job", int(sys.argv[1]), 0.002)
"""


def test_multiprocess_mode_sums_what_every_process_recorded(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for rows in ("5", "7"):
        subprocess.run([sys.executable, "-c", RECORD, rows], env=env, check=True)
    scrape = "from onnxq.telemetry import metrics; print(metrics.exposition().decode())"
    text = subprocess.run(
        [sys.executable, "-c", scrape], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert sample(text, "onnxq_jobs_submitted_total", model="m") == 2
    assert sample(text, "onnxq_rows_predicted_total", model="m", source="job") == 12
    assert sample(text, "onnxq_inference_duration_seconds_count", model="m", source="job") == 2
