"""The worker container's healthcheck: pool processes found under /proc, and Redis answering."""

from __future__ import annotations

from pathlib import Path

import pytest

from onnxq.devtools.redis_server import RedisServer
from onnxq.settings import Settings
from tests.support.broker import UNREACHABLE_REDIS
from worker import healthcheck
from worker.healthcheck import WorkerProcesses, check, find_worker

WORKER = ["/opt/venv/bin/python", "-m", "worker"]


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    root.mkdir()
    (root / "self").mkdir()  # non-numeric entries are skipped
    return root


def add_process(proc: Path, pid: int, parent: int, argv: list[str]) -> None:
    directory = proc / str(pid)
    directory.mkdir()
    directory.joinpath("cmdline").write_bytes(b"\0".join(arg.encode() for arg in argv) + b"\0")
    directory.joinpath("status").write_text(f"Name:\tpython\nPid:\t{pid}\nPPid:\t{parent}\n")


def settings(redis_url: str) -> Settings:
    return Settings(_env_file=None, redis_url=redis_url)


def test_a_worker_and_its_pool_children_are_found_by_command_line(proc: Path) -> None:
    add_process(proc, 1, 0, [*WORKER, "--loglevel", "INFO"])
    add_process(proc, 7, 1, WORKER)
    add_process(proc, 8, 1, WORKER)
    add_process(proc, 9, 0, ["python", "-m", "worker.healthcheck"])
    assert find_worker(proc) == WorkerProcesses(main_pid=1, pool_pids=(7, 8))


def test_the_onnxq_worker_script_counts_as_a_worker(proc: Path) -> None:
    add_process(proc, 5, 1, ["/opt/venv/bin/python", "/opt/venv/bin/onnxq-worker"])
    assert find_worker(proc) == WorkerProcesses(main_pid=5, pool_pids=())


def test_no_worker_process_is_reported(proc: Path, redis_server: RedisServer) -> None:
    add_process(proc, 1, 0, ["gunicorn", "-c", "/app/gunicorn_conf.py"])
    assert check(settings(redis_server.url), proc) == ["no process runs python -m worker"]


def test_a_worker_without_pool_processes_is_unhealthy(
    proc: Path, redis_server: RedisServer
) -> None:
    add_process(proc, 1, 0, WORKER)
    assert check(settings(redis_server.url), proc) == [
        "the Celery worker (pid 1) has no pool processes"
    ]


def test_a_worker_with_its_pool_and_redis_answering_is_healthy(
    proc: Path, redis_server: RedisServer
) -> None:
    add_process(proc, 1, 0, WORKER)
    add_process(proc, 2, 1, WORKER)
    assert check(settings(redis_server.url), proc) == []


def test_redis_not_answering_is_unhealthy(proc: Path) -> None:
    add_process(proc, 1, 0, WORKER)
    add_process(proc, 2, 1, WORKER)
    assert check(settings(UNREACHABLE_REDIS), proc) == ["Redis does not answer PING"]


def test_beat_is_checked_for_its_own_process_and_needs_no_pool(
    proc: Path, redis_server: RedisServer
) -> None:
    add_process(proc, 1, 0, ["python", "-m", "worker.beat"])
    assert check(settings(redis_server.url), proc, beat=True) == []
    assert check(settings(redis_server.url), proc) == ["no process runs python -m worker"]


def test_an_unknown_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert healthcheck.main(["--verbose"]) == 2
    assert "usage" in capsys.readouterr().err
