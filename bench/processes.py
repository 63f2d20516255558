"""The child processes of the benchmarks: the one module in bench/ that starts, waits for and
stops them (services, py-spy, one-shot commands, the benchmark's own redis-server).

Every child is onnxq's own ServiceProcess (onnxq/devtools/processes.py, which the tests use too):
a session of its own, its output in a file, stopped by its own pid (its process group only when it
does not stop in time), never by name. What is bench's alone is here: children run from the
repository root, their psutil children, and stopping many at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onnxq.devtools.processes import ServiceProcess

if TYPE_CHECKING:
    import psutil

    from onnxq.devtools.redis_server import RedisServer

# psutil and redis are imported where they are used (onnxq/devtools/processes.py does the same):
# bench/drift.py starts its measuring children through this module, and a child's peak RSS
# (ru_maxrss) starts from its parent's, so importing this module must not make the parent bigger.

ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    """One progress line on stdout, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Service(ServiceProcess):
    """onnxq's ServiceProcess run from the repository root; `port` is the one it serves, if any."""

    cwd: Path | None = ROOT
    port: int | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def children(self) -> list[psutil.Process]:
        import psutil

        try:
            return psutil.Process(self.pid).children(recursive=False)
        except psutil.NoSuchProcess:
            return []

    def wait(self, timeout: float | None = None) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def send_signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signum)

    def stop(self, timeout: float = 20.0, signum: int = signal.SIGTERM) -> None:
        stop_all([self], timeout, signum)

    def kill(self) -> None:
        """SIGKILL to the process group this script created for this child (start_new_session)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def stop_all(
    services: Iterable[Service], timeout: float = 20.0, signum: int = signal.SIGTERM
) -> None:
    """Signal every service at once, then wait for each; kill the ones that do not stop in time."""
    running = [service for service in services if service.alive()]
    for service in running:
        service.send_signal(signum)
    for service in running:
        try:
            service.wait(timeout)
        except subprocess.TimeoutExpired:
            service.kill()


def output_of(command: list[str], timeout: float | None = None, cwd: Path = ROOT) -> str:
    """Run a command to its end and return its stdout; CalledProcessError if it fails."""
    return subprocess.run(
        command, cwd=cwd, check=True, capture_output=True, text=True, timeout=timeout
    ).stdout


@contextlib.contextmanager
def own_redis(directory: Path) -> Iterator[RedisServer]:
    """A redis-server of the benchmark's own on a free port (never 6379), AOF everysec."""
    from onnxq.devtools.redis_server import RedisServer, free_port

    redis = RedisServer(free_port(), directory, appendonly=True)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def redis_process(redis: RedisServer) -> psutil.Process:
    import psutil

    assert redis.process is not None
    return psutil.Process(redis.process.pid)


def _raise_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def stop_on_signals() -> None:
    """SIGTERM and Ctrl-C unwind the stack, so that every `finally` stops what it started,
    also when started from a shell that ignores SIGINT."""
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
