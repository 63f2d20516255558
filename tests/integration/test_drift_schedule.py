"""Drift on beat's schedule: real redis-server, worker, beat and gateway processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import requests

from tests.drift_fixtures import SHIFTED, log_demo_predictions
from tests.integration.conftest import ServiceProcess, running_stack, wait_until

pytestmark = pytest.mark.integration


def test_beat_schedules_the_drift_task_the_worker_writes_the_report_and_the_gateway_serves_it(
    tmp_path: Path, model_dir: Path, redis_binary: str
) -> None:
    state_dir = tmp_path / "state"
    extra = {
        "ONNXQ_STATE_DIR": str(state_dir),
        "ONNXQ_DRIFT_SCHEDULE": "2",  # seconds, instead of weekly
        "ONNXQ_RECONCILE_INTERVAL_SECONDS": "3600",
    }
    with running_stack(tmp_path, model_dir, redis_binary, extra_env=extra) as stack:
        log_demo_predictions(model_dir, stack.prediction_log_dir, 800, shift=1.5)
        beat = ServiceProcess(
            "beat", [sys.executable, "-m", "worker.beat"], stack.env, tmp_path / "beat.log"
        ).start()
        try:
            report = state_dir / "drift" / "breast-cancer" / "latest.json"
            wait_until(report.is_file, 60, "the scheduled drift check to write its report")
            assert beat.alive(), beat.output()
        finally:
            beat.stop()
        assert "onnxq.drift" in beat.output()  # beat sent it, by name

        document = json.loads(report.read_text())
        assert document["rows"] == 800 and document["drifted"] == [SHIFTED]
        assert (report.parent / "latest.html").is_file()
        worker_log = stack.worker.output()
        assert '"drift_check"' in worker_log and '"drift_alert"' in worker_log

        served = requests.get(stack.url("/v1/models/breast-cancer/drift"), timeout=5)
        assert served.status_code == 200 and served.json()["drifted"] == [SHIFTED]
        page = requests.get(stack.url("/v1/models/breast-cancer/drift?format=html"), timeout=5)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
