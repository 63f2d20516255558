"""Real processes: redis-server, a Celery worker (`python -m worker`) and gunicorn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from onnxq.cli.run import gunicorn_config_path
from onnxq.devtools.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class ServiceProcess:
    """One child process with its output in a file, stopped with SIGTERM like in production."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


@dataclass
class Stack:
    redis: RedisServer
    gateway: ServiceProcess
    worker: ServiceProcess | None
    base_url: str
    prediction_log_dir: Path
    model_dir: Path
    env: dict[str, str]

    def start_worker(self) -> ServiceProcess:
        self.worker = start_worker(self.env, self.prediction_log_dir.parent)
        return self.worker

    def url(self, path: str) -> str:
        return self.base_url + path


def service_env(redis_url: str, model_dir: Path, log_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONNXQ_")}
    env.update(
        ONNXQ_REDIS_URL=redis_url,
        ONNXQ_MODEL_DIR=str(model_dir),
        ONNXQ_PREDICTION_LOG_DIR=str(log_dir),
        ONNXQ_GATEWAY_HOST="127.0.0.1",
        ONNXQ_GATEWAY_PORT=str(port),
        ONNXQ_GATEWAY_WORKERS="2",
        ONNXQ_WORKER_CONCURRENCY="2",
        ONNXQ_SYNC_MAX_ROWS="100",
        ONNXQ_ALLOW_UNAUTHENTICATED="true",
        ONNXQ_STATE_DIR=str(log_dir.parent / "state"),
        # Never the default port: stacks of other test runs may share this machine.
        ONNXQ_WORKER_METRICS_PORT=str(free_port()),
    )
    return env


def start_gateway(env: dict[str, str], directory: Path) -> ServiceProcess:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(gunicorn_config_path()),
        "gateway:create_app()",
    ]
    return ServiceProcess("gateway", command, env, directory / "gateway.log").start()


def start_worker(env: dict[str, str], directory: Path) -> ServiceProcess:
    command = [sys.executable, "-m", "worker"]
    return ServiceProcess("worker", command, env, directory / "worker.log").start()


def start_beat(env: dict[str, str], directory: Path) -> ServiceProcess:
    command = [sys.executable, "-m", "worker.beat"]
    return ServiceProcess("beat", command, env, directory / "beat.log").start()


def gateway_answers(base_url: str, path: str = "/health", status: int = 200) -> bool:
    try:
        return requests.get(base_url + path, timeout=1).status_code == status
    except requests.RequestException:
        return False


def worker_ready(worker: ServiceProcess, processes: int) -> bool:
    """True once the Celery worker said it is ready and every child loaded its models."""
    output = worker.output()
    return " ready." in output and output.count('"worker_process_ready"') >= processes


@contextmanager
def running_stack(
    directory: Path,
    model_dir: Path,
    redis_binary: str,
    *,
    extra_env: dict[str, str] | None = None,
    with_worker: bool = True,
) -> Iterator[Stack]:
    """redis-server, gateway and (optionally) worker, all real, on free ports."""
    redis = RedisServer(free_port(), directory / "redis", appendonly=True, binary=redis_binary)
    redis.start()
    port = free_port()
    env = service_env(redis.url, model_dir, directory / "predictions", port)
    env.update(extra_env or {})
    gateway = start_gateway(env, directory)
    worker = start_worker(env, directory) if with_worker else None
    base_url = f"http://127.0.0.1:{port}"
    stack = Stack(redis, gateway, worker, base_url, directory / "predictions", model_dir, env)
    try:
        wait_until(lambda: gateway_answers(base_url, "/ready"), 30, "the gateway to be ready")
        if worker is not None:
            wait_until(lambda: worker_ready(worker, 2), 30, "the worker to be ready")
        yield stack
    finally:
        stack.gateway.stop()
        if stack.worker is not None:
            stack.worker.stop()
        redis.kill()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, redis_binary: str
) -> Iterator[Stack]:
    """A whole stack for one test module."""
    with running_stack(tmp_path_factory.mktemp("stack"), model_dir, redis_binary) as running:
        yield running
