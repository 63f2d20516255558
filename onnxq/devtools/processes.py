"""onnxq's own processes as children of a test or benchmark: gateway, worker and beat.

Each runs in its own session with its output in a file, and is stopped with SIGTERM as in
production (its process group is killed only if it hangs). `service_env` gives them every setting
they depend on and nothing from the surroundings: no `ONNXQ_*` variable of the parent and no
`.env` file (ONNXQ_ENV_FILE is empty), so a developer's `.env` never reaches them.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# onnxq.cli.run, onnxq.devtools.redis_server and onnxq.settings are imported where they are
# used: bench/ starts its measuring children through this module, and a child's peak RSS
# (ru_maxrss) starts from its parent's, so importing this module must not make the parent bigger.

ENV_PREFIX = "ONNXQ_"
# Local children only: never through a proxy named in the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class ServiceProcess:
    """One child process with its output in a file, stopped with SIGTERM like in production."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    cwd: Path | None = None  # None: this process's working directory

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
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


def without_onnxq_variables(environ: dict[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: this process's environment) minus every ONNXQ_* variable."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.upper().startswith(ENV_PREFIX)}


def service_env(redis_url: str, model_dir: Path, log_dir: Path, port: int) -> dict[str, str]:
    """The environment of a gateway, worker or beat: every setting they depend on, set here."""
    from onnxq.devtools.redis_server import free_port
    from onnxq.settings import ENV_FILE_VARIABLE

    env = without_onnxq_variables()
    env.update(
        {
            ENV_FILE_VARIABLE: "",  # read no .env: not the checkout's, not the working directory's
            "ONNXQ_REDIS_URL": redis_url,
            "ONNXQ_MODEL_DIR": str(model_dir),
            "ONNXQ_PREDICTION_LOG_DIR": str(log_dir),
            "ONNXQ_GATEWAY_HOST": "127.0.0.1",
            "ONNXQ_GATEWAY_PORT": str(port),
            "ONNXQ_GATEWAY_WORKERS": "2",
            "ONNXQ_WORKER_CONCURRENCY": "2",
            "ONNXQ_SYNC_MAX_ROWS": "100",
            "ONNXQ_ALLOW_UNAUTHENTICATED": "true",
            "ONNXQ_STATE_DIR": str(log_dir.parent / "state"),
            # Callback and webhook receivers of tests and benchmarks listen on loopback.
            "ONNXQ_OUTBOUND_ALLOW": "127.0.0.1",
            # Never the default port: stacks of other test runs may share this machine.
            "ONNXQ_WORKER_METRICS_PORT": str(free_port()),
            "ONNXQ_GRPC_PORT": str(free_port()),
            "ONNXQ_GRPC_METRICS_PORT": str(free_port()),
        }
    )
    return env


def gateway_command(gunicorn_args: Iterable[str] = ()) -> list[str]:
    """gunicorn serving the gateway with onnxq's config (loaded by path: docs/architecture.md)."""
    from onnxq.cli.run import gunicorn_config_path

    config = str(gunicorn_config_path())
    return [sys.executable, "-m", "gunicorn", "-c", config, *gunicorn_args, "gateway:create_app()"]


def worker_command() -> list[str]:
    return [sys.executable, "-m", "worker"]


def start_gateway(env: dict[str, str], directory: Path) -> ServiceProcess:
    return ServiceProcess("gateway", gateway_command(), env, directory / "gateway.log").start()


def start_worker(env: dict[str, str], directory: Path) -> ServiceProcess:
    return ServiceProcess("worker", worker_command(), env, directory / "worker.log").start()


def start_grpc(env: dict[str, str], directory: Path) -> ServiceProcess:
    """The gRPC service (`python -m gateway.grpc_api`) on the env's ONNXQ_GRPC_PORT."""
    command = [sys.executable, "-m", "gateway.grpc_api"]
    return ServiceProcess("grpc", command, env, directory / "grpc.log").start()


def grpc_ready(grpc: ServiceProcess, processes: int) -> bool:
    """True once each of the service's `processes` server processes has started."""
    return grpc.output().count('"event":"grpc_server_started"') >= processes


def start_beat(env: dict[str, str], directory: Path) -> ServiceProcess:
    command = [sys.executable, "-m", "worker.beat"]
    return ServiceProcess("beat", command, env, directory / "beat.log").start()


def gateway_answers(base_url: str, path: str = "/health", status: int = 200) -> bool:
    """True when GET `path` answers `status` now; False on any other answer or none."""
    try:
        with _DIRECT.open(base_url + path, timeout=1) as response:
            return bool(response.status == status)
    except urllib.error.HTTPError as error:
        return error.code == status
    except (OSError, http.client.HTTPException):
        return False


def worker_ready(worker: ServiceProcess, processes: int, *, since: int = 0) -> bool:
    """True once a Celery worker said it is ready and each of its `processes` children loaded
    its models; `since` skips the output of earlier starts that appended to the same log."""
    output = worker.output()[since:]
    return " ready." in output and output.count('"worker_process_ready"') >= processes
