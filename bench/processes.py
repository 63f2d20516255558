"""The child processes of the benchmarks: the one module in bench/ that starts, waits for and
stops them (services, py-spy, one-shot commands, the benchmark's own redis-server).

Every child runs in a session of its own with its output in a file, and is stopped by its own
pid (its process group only when it does not stop in time), never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil

    from onnxq.devtools.redis_server import RedisServer

# psutil, redis and http.client are imported where they are used: bench/drift.py starts its
# measuring children through this module, and a child's peak RSS (ru_maxrss) starts from its
# parent's, so importing this module must not make the parent bigger.

ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    """One progress line on stdout, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Service:
    """A child process in its own session, output to a file; stopped by its own pid only."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    port: int | None = None  # the port it serves, when it is a server

    def start(self) -> Service:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

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


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_ok(port: int, path: str) -> bool:
    """Whether GET `path` on 127.0.0.1:`port` answers 200 within a second."""
    import http.client

    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", path)
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


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
