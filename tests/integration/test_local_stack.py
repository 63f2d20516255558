"""`onnxq run` (what `make run` runs): Ctrl-C in the middle of a burst loses nothing.

The terminal's Ctrl-C reaches `onnxq run` only (every child, the embedded Redis too, has its own
session); it stops the gateway and the gRPC service, then beat, then the worker (warm shutdown),
and Redis last. The
next start then finishes every accepted job, and each row is logged once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
import requests

from onnxq.devtools.redis_server import free_port, redis_answers
from onnxq.devtools.waiting import wait_until
from onnxq.registry.demo import DEMO_MODEL_NAME
from tests.support.live_jobs import ended, statuses
from tests.support.prediction_log import prediction_lines

pytestmark = pytest.mark.integration

JOBS_PATH = f"/v1/models/{DEMO_MODEL_NAME}/jobs"
BURST = 3000  # jobs at most; Ctrl-C comes long before they are all done
ROW = [17.99, 10.38, 122.8, 1001, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871] * 3


class LocalRun:
    """`python -m onnxq.cli run` in its own session, as a terminal would run `make run`."""

    def __init__(self, directory: Path, env: dict[str, str]):
        self.directory, self.env = directory, env
        self.log_path = directory / "run.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "onnxq.cli", "run"],
                cwd=self.directory,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def interrupt(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)  # the whole foreground group, like a tty

    def wait(self, timeout: float = 400) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def ctrl_c(self, timeout: float = 400) -> int:
        self.interrupt()
        return self.wait(timeout)

    def child(self, name: str) -> int:
        """The pid of the child process `onnxq run` started as `name` (worker: `-m worker`)."""
        assert self.process is not None
        for child in psutil.Process(self.process.pid).children():
            if child.cmdline()[-2:] == ["-m", name]:
                return child.pid
        raise AssertionError(f"onnxq run has no {name} process")

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found


def freeze_with_jobs_to_do(worker: int, client: redis.Redis, accepted: list[str]) -> Counter[str]:
    """SIGSTOP the worker's process group at a moment when accepted jobs are still to do."""
    for _ in range(500):
        os.killpg(worker, signal.SIGSTOP)
        states = Counter(statuses(client, list(accepted)).values())
        if states["queued"] + states["running"] > 0:
            return states
        os.killpg(worker, signal.SIGCONT)
        seen = len(accepted)
        wait_until(lambda seen=seen: len(accepted) > seen, 30, "another accepted job")
    raise AssertionError("no moment with jobs left to do")


def ready(base_url: str) -> bool:
    try:
        return requests.get(base_url + "/ready", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_ctrl_c_during_a_burst_stops_redis_last_and_the_next_start_ends_every_job_once(
    tmp_path: Path, model_dir: Path
) -> None:
    redis_port, gateway_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONNXQ_")}
    env.update(
        ONNXQ_REDIS_URL=redis_url,
        ONNXQ_MODEL_DIR=str(model_dir),
        ONNXQ_PREDICTION_LOG_DIR=str(tmp_path / "predictions"),
        ONNXQ_STATE_DIR=str(tmp_path / "var"),
        ONNXQ_GATEWAY_HOST="127.0.0.1",
        ONNXQ_GATEWAY_PORT=str(gateway_port),
        ONNXQ_GATEWAY_WORKERS="2",
        ONNXQ_WORKER_CONCURRENCY="2",
        ONNXQ_WORKER_METRICS_PORT=str(free_port()),
        ONNXQ_GRPC_PORT=str(free_port()),
        ONNXQ_GRPC_METRICS_PORT=str(free_port()),
    )
    base = f"http://127.0.0.1:{gateway_port}"
    run = LocalRun(tmp_path, env)
    run.start()
    accepted: list[str] = []
    stop_submitting = threading.Event()
    try:
        wait_until(lambda: ready(base), 90, "onnxq run to be ready")
        client = redis.Redis.from_url(redis_url, socket_timeout=5)

        def submit(_: int) -> None:
            with requests.Session() as session:
                while not stop_submitting.is_set() and len(accepted) < BURST:
                    try:
                        response = session.post(
                            base + JOBS_PATH, json={"instances": [ROW]}, timeout=10
                        )
                    except requests.RequestException:
                        continue  # slow under load, or the gateway has stopped: not accepted
                    if response.status_code == 202:
                        accepted.append(response.json()["job_id"])

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(submit, n) for n in range(8)]
            # Ctrl-C once jobs are both done and still to do: the middle of a burst. The worker
            # keeps up with 8 clients, so it is frozen for the look, and Ctrl-C comes while
            # jobs are provably queued or running; it is thawed at once.
            wait_until(lambda: len(accepted) >= 300, 60, "300 accepted jobs")
            wait_until(lambda: ended(client, list(accepted)) >= 50, 60, "jobs to end")
            worker = run.child("worker")
            in_flight = freeze_with_jobs_to_do(worker, client, accepted)
            run.interrupt()
            os.killpg(worker, signal.SIGCONT)
            assert run.wait() == 0
            stop_submitting.set()
            for future in futures:
                future.result()
    finally:
        stop_submitting.set()
        if run.process is not None and run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)

    events = run.events()
    order = [
        e.get("process", "redis") if e["event"] == "process_stopped" else "redis"
        for e in events
        if e.get("event") in {"process_stopped", "redis_stopped"}
    ]
    assert order == ["gateway", "grpc", "beat", "worker", "redis"], order
    assert all(e.get("returncode") == 0 for e in events if e.get("event") == "process_stopped"), [
        e for e in events if e.get("event") == "process_stopped"
    ]
    assert not redis_answers(redis_url), "the embedded Redis outlived onnxq run"

    # The next start: every accepted job ends, none is left running, each row logged once.
    ids = list(accepted)
    rerun = LocalRun(tmp_path, env)
    rerun.start()
    try:
        wait_until(lambda: ready(base), 90, "the second onnxq run to be ready")
        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        wait_until(lambda: ended(client, ids) == len(ids), 60, f"all {len(ids)} jobs to end")
        assert Counter(statuses(client, ids).values()) == {"succeeded": len(ids)}
    finally:
        assert rerun.ctrl_c() == 0
    lines = prediction_lines(tmp_path / "predictions")
    logged = Counter((line["job_id"], line["row"]) for line in lines if line["job_id"])
    assert set(logged) == {(job_id, 0) for job_id in ids}
    assert max(logged.values()) == 1, [key for key, n in logged.items() if n > 1][:5]
    print(f"\n{len(ids)} jobs accepted, {in_flight} when Ctrl-C came; all logged once")
