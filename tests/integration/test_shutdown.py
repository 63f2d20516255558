"""SIGTERM stops the gateway and the worker cleanly, as `make run`'s Ctrl-C and compose do."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from onnxq.redis_server import RedisServer, free_port
from tests.integration.conftest import (
    gateway_answers,
    service_env,
    start_gateway,
    start_worker,
    wait_until,
    worker_ready,
)

pytestmark = pytest.mark.integration


def test_sigterm_after_serving_exits_zero_without_onnxruntime_aborts(
    tmp_path: Path, model_dir: Path, redis_binary: str
) -> None:
    redis = RedisServer(free_port(), tmp_path / "redis", binary=redis_binary)
    redis.start()
    port = free_port()
    env = service_env(redis.url, model_dir, tmp_path / "predictions", port)
    gateway, worker = start_gateway(env, tmp_path), start_worker(env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: gateway_answers(base, "/ready"), 30, "the gateway")
        wait_until(lambda: worker_ready(worker, 2), 30, "the worker")
        response = requests.post(
            base + "/v1/models/breast-cancer/predict", json={"instances": [[1.0] * 30]}, timeout=5
        )
        assert response.status_code == 200
    finally:
        gateway_code, worker_code = gateway.stop(), worker.stop()
        redis.kill()

    assert gateway_code == 0, gateway.output()[-2000:]
    assert worker_code == 0, worker.output()[-2000:]
    # ORT state inherited across fork made gunicorn workers abort on exit.
    assert "terminate called" not in gateway.output()
    assert "SIGABRT" not in gateway.output()
