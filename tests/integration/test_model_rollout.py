"""Promote and roll back on a running stack: gateway and worker switch without restart or errors.

Real redis-server, gunicorn (2 workers) and Celery worker (2 children); `onnxq register`,
`promote` and `rollback` run as separate processes, as an operator would run them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.conftest import Stack, running_stack, wait_until
from tests.onnxq.lifecycle import export_pipeline, training_csv

pytestmark = pytest.mark.integration

MODEL = "breast-cancer"
ROWS = [[1.0] * 30, [20.0] * 30, [14.0] * 30]
SWITCH_TIMEOUT = 15.0  # DEFAULT is re-read every 2 s; generous for a loaded 2-core machine
CONSECUTIVE = 12  # answers in a row on the new version: both gunicorn workers have switched


class PredictLoop(threading.Thread):
    """Synchronous predicts back to back, counting versions served and anything but a 200."""

    def __init__(self, base_url: str, max_seconds: float = 120.0):
        super().__init__(daemon=True)
        self.base_url = base_url
        self.deadline = time.monotonic() + max_seconds
        self.stop = threading.Event()
        self.versions: list[int] = []
        self.errors: list[str] = []

    def run(self) -> None:
        session = requests.Session()
        url = f"{self.base_url}/v1/models/{MODEL}/predict"
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                response = session.post(url, json={"instances": ROWS}, timeout=10)
            except requests.RequestException as exc:
                self.errors.append(repr(exc))
                continue
            if response.status_code != 200:
                self.errors.append(f"{response.status_code} {response.text[:200]}")
            else:
                self.versions.append(response.json()["version"])

    def serving(self, version: int) -> bool:
        recent = self.versions[-CONSECUTIVE:]
        return len(recent) == CONSECUTIVE and set(recent) == {version}


def onnxq(stack: Stack, *argv: str | Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "onnxq.cli", *map(str, argv)],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def described_version(stack: Stack) -> tuple[int, int]:
    body = requests.get(stack.url(f"/v1/models/{MODEL}"), timeout=5).json()
    return body["default_version"], body["version"]


def job_on(stack: Stack) -> dict[str, Any]:
    submitted = requests.post(
        stack.url(f"/v1/models/{MODEL}/jobs"), json={"instances": ROWS}, timeout=10
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]

    def ended() -> bool:
        return requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=5).json()["status"] in (
            "succeeded",
            "failed",
        )

    wait_until(ended, 30, f"job {job_id} to end")
    job: dict[str, Any] = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=5).json()
    assert job["status"] == "succeeded", job
    return job


def switch(stack: Stack, loop: PredictLoop, command: list[str], version: int) -> float:
    """Run the command; return the seconds from its end until the gateway serves `version`.

    Then a job must run on `version` too: the worker loads it on demand, without restart.
    """
    onnxq(stack, *command)
    started = time.monotonic()
    wait_until(
        lambda: described_version(stack) == (version, version) and loop.serving(version),
        SWITCH_TIMEOUT,
        f"the gateway to serve version {version}",
    )
    switched_after = time.monotonic() - started
    job = job_on(stack)
    assert (job["version"], job["result"]["version"]) == (version, version)
    return switched_after


def logged_versions(directory: Path) -> Counter[tuple[str, int]]:
    return Counter(
        (line["source"], line["version"])
        for path in directory.glob("predictions-*.jsonl")
        for line in map(json.loads, path.read_text().splitlines())
    )


def test_promote_and_rollback_switch_gateway_and_worker_without_restart_or_errors(
    tmp_path: Path, model_dir: Path, redis_binary: str
) -> None:
    models = tmp_path / "models"
    shutil.copytree(model_dir, models)  # version 1: the demo forest, no DEFAULT file
    exported = export_pipeline(tmp_path / "export") / "model.onnx"
    training = training_csv(tmp_path)

    with running_stack(tmp_path / "stack", models, redis_binary) as stack:
        gateway_pid = stack.gateway.process.pid if stack.gateway.process else None
        onnxq(stack, "register", MODEL, exported, "--reference", training)
        loop = PredictLoop(stack.base_url)
        loop.start()
        try:
            wait_until(lambda: len(loop.versions) >= CONSECUTIVE, 30, "predicts to flow")
            time.sleep(2.5)  # past the default cache: an unpromoted version must not be served
            assert loop.serving(1) and described_version(stack) == (1, 1)
            assert job_on(stack)["version"] == 1

            promoted_after = switch(stack, loop, ["promote", MODEL, "2"], 2)
            rolled_back_after = switch(stack, loop, ["rollback", MODEL], 1)
        finally:
            loop.stop.set()
            loop.join(15)

        print(
            f"\nafter the command returned: v2 served by every gateway worker in "
            f"{promoted_after:.1f} s, v1 again in "
            f"{rolled_back_after:.1f} s; {len(loop.versions)} sync predicts, "
            f"{len(loop.errors)} errors"
        )
        assert loop.errors == []
        assert {1, 2} <= set(loop.versions)
        assert stack.gateway.alive() and stack.worker is not None and stack.worker.alive()
        assert stack.gateway.process is not None and stack.gateway.process.pid == gateway_pid
        logged = logged_versions(stack.prediction_log_dir)
        assert logged[("job", 2)] == len(ROWS)  # the promoted version's job, row by row
        assert logged[("job", 1)] == 2 * len(ROWS)
        assert logged[("sync", 2)] > 0
        assert '"default_version_changed"' in stack.gateway.output()
