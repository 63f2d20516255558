"""Real processes: redis-server, a Celery worker (`python -m worker`) and gunicorn.

The processes themselves are onnxq/devtools/processes.py (bench/ can use them too); this file
puts them together into a stack per test or module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from onnxq.devtools.processes import (
    ServiceProcess,
    gateway_answers,
    grpc_ready,
    service_env,
    start_gateway,
    start_grpc,
    start_worker,
    worker_ready,
)
from onnxq.devtools.redis_server import RedisServer, free_port
from onnxq.devtools.waiting import wait_until
from onnxq.jobs.record import JobStatus
from tests.support.log_events import events

READY_TIMEOUT = 30.0


@dataclass
class Stack:
    redis: RedisServer
    gateway: ServiceProcess
    worker: ServiceProcess | None
    base_url: str
    prediction_log_dir: Path
    model_dir: Path
    env: dict[str, str]
    grpc: ServiceProcess | None = None

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.env['ONNXQ_GRPC_PORT']}"

    @property
    def directory(self) -> Path:
        """Where the processes' logs are written."""
        return self.prediction_log_dir.parent

    @property
    def gateway_processes(self) -> int:
        """gunicorn worker processes, each with its own sessions and default-version cache."""
        return int(self.env["ONNXQ_GATEWAY_WORKERS"])

    @property
    def worker_processes(self) -> int:
        """Celery prefork children of the worker."""
        return int(self.env["ONNXQ_WORKER_CONCURRENCY"])

    def start_worker(self) -> ServiceProcess:
        """Start a worker and wait until every child is ready (a restart appends to its log)."""
        log_path = self.directory / "worker.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        worker = start_worker(self.env, self.directory)
        self.worker = worker
        wait_until(
            lambda: worker_ready(worker, self.worker_processes, since=offset),
            READY_TIMEOUT,
            "the worker to be ready",
        )
        return worker

    def url(self, path: str) -> str:
        return self.base_url + path

    def ended_job(
        self, job_id: str, timeout: float = 30.0, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Poll GET /v1/jobs/<id> until the job has ended; return that document."""
        seen: dict[str, Any] = {}

        def ended() -> bool:
            seen.update(
                requests.get(self.url(f"/v1/jobs/{job_id}"), headers=headers, timeout=5).json()
            )
            return "status" in seen and JobStatus(seen["status"]).ended

        wait_until(ended, timeout, f"job {job_id} to end (last seen: {seen.get('status')})")
        return seen


@contextmanager
def running_stack(
    directory: Path,
    model_dir: Path,
    redis_binary: str,
    *,
    extra_env: dict[str, str] | None = None,
    with_worker: bool = True,
    with_grpc: bool = False,
) -> Iterator[Stack]:
    """redis-server, gateway and (optionally) worker, all real, on free ports, all ready."""
    redis = RedisServer(free_port(), directory / "redis", appendonly=True, binary=redis_binary)
    redis.start()
    port = free_port()
    env = service_env(redis.url, model_dir, directory / "predictions", port)
    env.update(extra_env or {})
    gateway = start_gateway(env, directory)
    base_url = f"http://127.0.0.1:{port}"
    stack = Stack(redis, gateway, None, base_url, directory / "predictions", model_dir, env)
    try:
        if with_worker:
            stack.start_worker()
        if with_grpc:
            grpc = stack.grpc = start_grpc(env, directory)
            processes = int(env.get("ONNXQ_GRPC_WORKERS", "2"))
            wait_until(lambda: grpc_ready(grpc, processes), READY_TIMEOUT, "the gRPC service")
        wait_until(lambda: gateway_answers(base_url, "/ready"), READY_TIMEOUT, "the gateway")
        wait_until(
            lambda: len(events(gateway.output(), "configuration")) >= stack.gateway_processes,
            READY_TIMEOUT,
            "every gateway process to start",
        )
        yield stack
    finally:
        stack.gateway.stop()
        if stack.grpc is not None:
            stack.grpc.stop()
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
