"""SIGTERM stops the gateway and the worker cleanly, as `make run`'s Ctrl-C and compose do."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.integration.conftest import running_stack

pytestmark = pytest.mark.integration


def test_sigterm_after_serving_exits_zero_without_onnxruntime_aborts(
    tmp_path: Path, model_dir: Path, redis_binary: str
) -> None:
    with running_stack(tmp_path, model_dir, redis_binary) as stack:
        response = requests.post(
            stack.url("/v1/models/breast-cancer/predict"),
            json={"instances": [[1.0] * 30]},
            timeout=5,
        )
        assert response.status_code == 200
    # running_stack stopped both with SIGTERM, as compose and Ctrl-C do.
    gateway, worker = stack.gateway, stack.worker
    assert worker is not None
    assert gateway.process is not None and gateway.process.returncode == 0, gateway.output()[-2000:]
    assert worker.process is not None and worker.process.returncode == 0, worker.output()[-2000:]
    # ORT state inherited across fork made gunicorn workers abort on exit.
    assert "terminate called" not in gateway.output()
    assert "SIGABRT" not in gateway.output()
