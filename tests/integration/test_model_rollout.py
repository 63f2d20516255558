"""Promote and roll back on a running stack: gateway and worker switch without restart or errors.

Real redis-server, gunicorn (2 workers) and Celery worker (2 children); `onnxq register`,
`promote` and `rollback` run as separate processes, as an operator would run them.
"""

from __future__ import annotations

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

from onnxq.devtools.waiting import wait_until
from onnxq.models.repository import DEFAULT_CACHE_SECONDS
from tests.integration.conftest import Stack, running_stack
from tests.support.lifecycle import export_pipeline, training_csv
from tests.support.log_events import events
from tests.support.prediction_log import prediction_lines

pytestmark = pytest.mark.integration

MODEL = "breast-cancer"
ROWS = [[1.0] * 30, [20.0] * 30, [14.0] * 30]
SWITCH_TIMEOUT = 15.0  # DEFAULT is re-read every 2 s; generous for a loaded 2-core machine
CONSECUTIVE = 12  # answers in a row on the new version


class PredictLoop(threading.Thread):
    """Synchronous predicts back to back, counting versions served and anything but a 200.

    Each on a new connection, so that the kernel spreads them over every gunicorn worker
    process (a keep-alive connection would stay with one of them).
    """

    def __init__(self, base_url: str, max_seconds: float = 120.0):
        super().__init__(daemon=True)
        self.base_url = base_url
        self.deadline = time.monotonic() + max_seconds
        self.stop = threading.Event()
        self.answers: list[tuple[float, int]] = []  # (when the request was sent, version)
        self.errors: list[str] = []

    @property
    def versions(self) -> list[int]:
        return [version for _, version in self.answers]

    def run(self) -> None:
        url = f"{self.base_url}/v1/models/{MODEL}/predict"
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            sent = time.monotonic()
            try:
                response = requests.post(url, json={"instances": ROWS}, timeout=10)
            except requests.RequestException as exc:
                self.errors.append(repr(exc))
                continue
            if response.status_code != 200:
                self.errors.append(f"{response.status_code} {response.text[:200]}")
            else:
                self.answers.append((sent, response.json()["version"]))

    def serving(self, version: int) -> bool:
        recent = self.versions[-CONSECUTIVE:]
        return len(recent) == CONSECUTIVE and set(recent) == {version}

    def versions_sent_after(self, moment: float) -> list[int]:
        return [version for sent, version in self.answers if sent >= moment]


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
    job = stack.ended_job(submitted.json()["job_id"])
    assert job["status"] == "succeeded", job
    return job


def gateway_switches(stack: Stack, version: int, previous: int) -> int:
    """How many gateway processes said they now serve `version` instead of `previous`.

    Each gunicorn worker logs `default_version_changed` once, on its first request that
    finds the new default (docs/operations.md).
    """
    found = events(stack.gateway.output(), "default_version_changed", model=MODEL)
    return sum(1 for e in found if (e["version"], e["previous"]) == (version, previous))


def switch(stack: Stack, loop: PredictLoop, command: list[str], version: int) -> float:
    """Run the command; return the seconds from its end until every gateway worker serves
    `version`.

    Only then is a job submitted, so whichever gateway process takes it resolves `version`:
    the job must run on `version` too, which the worker loads on demand, without restart.
    """
    previous = described_version(stack)[0]
    before = gateway_switches(stack, version, previous)
    onnxq(stack, *command)
    started = time.monotonic()
    wait_until(
        lambda: (
            gateway_switches(stack, version, previous) >= before + stack.gateway_processes
            and described_version(stack) == (version, version)
            and loop.serving(version)
        ),
        SWITCH_TIMEOUT,
        f"every gateway worker to serve version {version}",
    )
    switched_after = time.monotonic() - started
    job = job_on(stack)
    assert (job["version"], job["result"]["version"]) == (version, version)
    return switched_after


def logged_versions(directory: Path) -> Counter[tuple[str, int]]:
    return Counter((line["source"], line["version"]) for line in prediction_lines(directory))


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
        # A request sent this long after `register` returned finds, in any process, the
        # DEFAULT it left (re-read at most every DEFAULT_CACHE_SECONDS): never version 2.
        cache_expired = time.monotonic() + DEFAULT_CACHE_SECONDS
        loop = PredictLoop(stack.base_url)
        loop.start()
        try:
            wait_until(
                lambda: len(loop.versions_sent_after(cache_expired)) >= CONSECUTIVE,
                30,
                "predicts sent after the default cache expired",
            )
            assert set(loop.versions_sent_after(cache_expired)) == {1}
            assert described_version(stack) == (1, 1)
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
        assert gateway_switches(stack, 2, 1) == gateway_switches(stack, 1, 2)
        assert gateway_switches(stack, 1, 2) == stack.gateway_processes
