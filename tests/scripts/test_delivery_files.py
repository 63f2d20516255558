"""The CI workflow and the compose file say what issue 7 asks of them (read as YAML)."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def load(relative: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / relative).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_workflow_lints_tests_and_pushes_both_images_to_ghcr_by_sha_and_latest_on_main() -> (
    None
):
    workflow = load(".github/workflows/ci.yml")
    # PyYAML reads the bare key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert triggers["push"]["branches"] == ["main"]
    steps = [step.get("run", "") for step in workflow["jobs"]["test"]["steps"]]
    assert "make lint" in steps and any(run.startswith("make test") for run in steps)

    images = workflow["jobs"]["images"]
    assert images["permissions"]["packages"] == "write"
    built = {entry["image"] for entry in images["strategy"]["matrix"]["include"]}
    assert {"gateway", "worker"} <= built
    assert "refs/heads/main" in images["env"]["PUSH"]
    build = next(s for s in images["steps"] if s.get("uses", "").startswith("docker/build-push"))
    tags = build["with"]["tags"]
    assert ":${{ github.sha }}" in tags and ":latest" in tags
    login = next(s for s in images["steps"] if s.get("uses", "").startswith("docker/login"))
    assert login["with"]["registry"] == "ghcr.io"
    assert login["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"


def test_the_workflow_holds_no_secret_of_its_own() -> None:
    text = (ROOT / ".github/workflows/ci.yml").read_text(encoding="utf-8")
    secrets = set(re.findall(r"secrets\.([A-Z_]+)", text))
    assert secrets == {"GITHUB_TOKEN"}


def test_compose_scales_workers_runs_one_beat_and_keeps_redis_durable() -> None:
    services = load("docker-compose.yml")["services"]
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert services["beat"]["command"] == ["python", "-m", "worker.beat"]
    assert "deploy" not in services["beat"]  # never replicated
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "noeviction" in redis_command
    assert services["gateway"]["ports"] and services["grpc"]["ports"]
    assert services["grpc"]["command"] == ["python", "-m", "gateway.grpc_api"]
    assert all(
        "ports" not in s
        for name, s in services.items()
        if name not in {"gateway", "grpc", "flower"}
    )


def test_the_images_bind_all_interfaces_while_one_machine_runs_bind_loopback() -> None:
    # Settings default to 127.0.0.1 (make run); a container must listen on 0.0.0.0.
    gateway = (ROOT / "Dockerfile.gateway").read_text()
    worker = (ROOT / "Dockerfile.worker").read_text()
    assert "ONNXQ_GATEWAY_HOST=0.0.0.0" in gateway
    assert "ONNXQ_GRPC_HOST=0.0.0.0" in gateway
    assert "ONNXQ_WORKER_METRICS_HOST=0.0.0.0" in worker


def test_gunicorns_control_socket_lives_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONNXQ_STATE_DIR", str(tmp_path / "state"))
    # on_starting exports the metrics directory; monkeypatch puts the environment back after.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    config = runpy.run_path(str(ROOT / "gateway" / "gunicorn_conf.py"))
    assert config["control_socket"] == str((tmp_path / "state" / "gunicorn.ctl").resolve())
    config["on_starting"](None)
    assert (tmp_path / "state").is_dir()
    config["on_exit"](None)


def test_precompile_can_leave_a_packages_bytecode_out(tmp_path: Path) -> None:
    """`--without PKG`: the worker image carries no bytecode for pandas, which only the weekly
    drift check loads."""
    package = tmp_path / "heavy"
    package.mkdir()
    (package / "__init__.py").write_text("from heavy import part\n")
    (package / "part.py").write_text("VALUE = 1\n")
    (tmp_path / "light.py").write_text("import heavy\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    script = str(ROOT / "scripts" / "precompile.py")
    done = subprocess.run(
        [sys.executable, script, "--without", "heavy", "light"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "left out heavy's bytecode (1 caches)" in done.stdout
    assert not list(package.rglob("*.pyc"))
    assert list((tmp_path / "__pycache__").glob("light.*.pyc"))
