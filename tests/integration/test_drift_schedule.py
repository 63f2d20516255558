"""Drift on beat's schedule: real redis-server, worker, beat and gateway processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from onnxq.devtools.processes import start_beat
from onnxq.devtools.waiting import wait_until
from tests.integration.conftest import running_stack
from tests.support.demo_predictions import SHIFTED, log_demo_predictions
from tests.support.log_events import events

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
        beat = start_beat(stack.env, tmp_path)
        assert stack.worker is not None
        worker = stack.worker
        report = state_dir / "drift" / "breast-cancer" / "latest.json"
        try:
            # The worker logs `drift_check` once the reports are written and the alert raised.
            wait_until(
                lambda: bool(events(worker.output(), "drift_check", model="breast-cancer")),
                60,
                "the scheduled drift check to run",
            )
            assert beat.alive(), beat.output()
        finally:
            beat.stop()
        assert "onnxq.drift" in beat.output()  # beat sent it, by name

        check = events(worker.output(), "drift_check", model="breast-cancer")[0]
        assert (check["rows"], check["drifted"], check["report"]) == (800, [SHIFTED], str(report))
        assert events(worker.output(), "drift_alert", model="breast-cancer")
        document = json.loads(report.read_text())
        assert document["rows"] == 800 and document["drifted"] == [SHIFTED]
        assert (report.parent / "latest.html").is_file()

        served = requests.get(stack.url("/v1/models/breast-cancer/drift"), timeout=5)
        assert served.status_code == 200 and served.json()["drifted"] == [SHIFTED]
        page = requests.get(stack.url("/v1/models/breast-cancer/drift?format=html"), timeout=5)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
