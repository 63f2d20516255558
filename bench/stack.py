"""The servers the benchmarks measure: onnxq (gunicorn gateway + `python -m worker`, with the
commands, environment and readiness checks of onnxq/devtools/processes.py, as in the tests), the
bare Celery worker (bench/bare_celery.py) and
the bare Flask floor (bench/floor_app.py); and reading their Prometheus /metrics."""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.processes import ROOT, Service, stop_all
from onnxq.devtools import processes
from onnxq.devtools.metrics_text import sample
from onnxq.devtools.processes import gateway_answers, gateway_command, worker_command, worker_ready
from onnxq.devtools.redis_server import free_port
from onnxq.devtools.waiting import wait_until

CONCURRENCY = 2  # prefork children on both Celery sides, and gunicorn workers


def service_env(redis_url: str, model_dir: Path, log_dir: Path, port: int) -> dict[str, str]:
    """onnxq's environment as the tests give it (this Redis, this model directory, no API key,
    no .env, 2 + 2 processes), without the benchmarks' own BENCH_* variables."""
    env = processes.service_env(redis_url, model_dir, log_dir, port)
    assert env["ONNXQ_GATEWAY_WORKERS"] == env["ONNXQ_WORKER_CONCURRENCY"] == str(CONCURRENCY)
    return {k: v for k, v in env.items() if not k.startswith("BENCH_")}


def local_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@dataclass
class OnnxqStack:
    gateway: Service
    worker: Service
    port: int

    def worker_children(self) -> list[psutil.Process]:
        return self.worker.children()

    def gateway_workers(self) -> list[psutil.Process]:
        return self.gateway.children()

    @property
    def worker_metrics_port(self) -> int:
        return int(self.worker.env.get("ONNXQ_WORKER_METRICS_PORT", "9101"))

    def stop(self) -> None:
        self.gateway.stop()
        self.worker.stop()


def start_onnxq(
    redis_url: str,
    model_dir: Path,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    gunicorn_args: Iterable[str] = (),
) -> OnnxqStack:
    """Gateway and worker as tests/integration/conftest.py starts them; stopped if not ready."""
    port = free_port()
    env = service_env(redis_url, model_dir, workdir / "predictions", port)
    env.update(extra_env or {})
    command = gateway_command(gunicorn_args)
    gateway = Service("gateway", command, env, workdir / "gateway.log", port=port).start()
    worker = Service("worker", worker_command(), env, workdir / "worker.log").start()
    stack = OnnxqStack(gateway, worker, port)
    try:
        wait_for_gateway(gateway)
        wait_until(lambda: worker_ready(worker, CONCURRENCY), 60, "the onnxq worker to be ready")
    except BaseException:
        stack.stop()
        raise
    return stack


def wait_for_gateway(gateway: Service) -> None:
    """Until the gateway answers /ready and gunicorn has its CONCURRENCY workers."""
    assert gateway.port is not None
    url = local_url(gateway.port)
    wait_until(lambda: gateway_answers(url, "/ready"), 60, "the onnxq gateway to be ready")
    wait_until(lambda: len(gateway.children()) >= CONCURRENCY, 30, "gunicorn's workers")


def start_pod_workers(env: dict[str, str], workdir: Path, count: int) -> list[Service]:
    """`count` `python -m worker` processes of one pool process each, as the Kubernetes worker
    pods run (ONNXQ_WORKER_CONCURRENCY=1, deploy/kubernetes/base/worker.yaml), each with its own
    Celery node name, metrics port and log; no beat (the worker never embeds one). Returned
    once every one has loaded its models; all stopped if one is not ready."""
    workers = []
    try:
        for i in range(1, count + 1):
            own = {**env, "ONNXQ_WORKER_CONCURRENCY": "1"}
            own["ONNXQ_WORKER_METRICS_PORT"] = str(free_port())
            command = [*worker_command(), "--hostname", f"worker{i}@%h"]
            workers.append(Service(f"worker{i}", command, own, workdir / f"worker{i}.log").start())
        for worker in workers:
            wait_until(lambda w=worker: worker_ready(w, 1), 60, f"{worker.name} to be ready")
    except BaseException:
        stop_all(workers)
        raise
    return workers


def start_bare_worker(
    redis_url: str, model_path: Path, workdir: Path, extra_env: dict[str, str] | None = None
) -> Service:
    """bench/bare_celery.py under `celery worker`, prefork 2, its children not yet waited for;
    `extra_env` e.g. BENCH_ACKS_LATE=1, BENCH_PREFETCH=1 (bench/bare_celery.py)."""
    env = dict(os.environ, BENCH_REDIS_URL=redis_url, BENCH_MODEL_PATH=str(model_path))
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.bare_celery",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(CONCURRENCY),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
    ]
    return Service("bare-celery", command, env, workdir / "bare_celery.log").start()


def start_floor(model_path: Path, workdir: Path) -> Service:
    """bench/floor_app.py under gunicorn, 2 sync workers, answering on `service.port`."""
    port = free_port()
    env = {**os.environ, "FLOOR_MODEL": str(model_path), "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "2",
        "-k",
        "sync",
        "-b",
        f"127.0.0.1:{port}",
        "bench.floor_app:create_app()",
    ]
    service = Service("floor", command, env, workdir / "floor.log", port=port).start()
    wait_until(lambda: gateway_answers(local_url(port), "/health"), 60, "the floor to answer")
    wait_until(lambda: len(service.children()) >= 2, 30, "the floor's workers")
    return service


def scrape(port: int) -> str:
    """The Prometheus text of http://127.0.0.1:<port>/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return answer.read().decode()


def metric(port: int, name: str, **labels: str) -> float:
    """One sample of a /metrics page, 0.0 when absent."""
    return sample(scrape(port), name, **labels)
