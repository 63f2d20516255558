"""`onnxq run`: Redis (embedded when none answers), gateway, worker and beat in the foreground."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import structlog

from onnxq.devtools.redis_server import RedisServer, redis_answers
from onnxq.settings import Settings

log = structlog.get_logger("onnxq.run")

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class LocalStack:
    """Starts and supervises the processes of a one-machine onnxq; stops them all on Ctrl-C."""

    def __init__(self, settings: Settings, state_dir: Path = Path("var")):
        self.settings = settings
        self.state_dir = state_dir
        self.redis: RedisServer | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = False

    def ensure_redis(self) -> None:
        url = self.settings.redis_url
        if redis_answers(url):
            log.info("redis_found", url=_without_password(url))
            return
        parsed = urlparse(url)
        if parsed.hostname not in LOCAL_HOSTS:
            raise SystemExit(f"Redis at {_without_password(url)} does not answer")
        self.redis = RedisServer(parsed.port or 6379, self.state_dir / "redis", appendonly=True)
        self.redis.start()
        log.info("redis_started", url=self.redis.url, binary=self.redis.binary, appendonly=True)

    def start_children(self) -> None:
        python = sys.executable
        env = dict(os.environ)
        if not self.settings.api_keys:
            # `onnxq run` is the development path: no key configured means an open gateway.
            log.warning("authentication_disabled", hint="set ONNXQ_API_KEYS to require keys")
            env["ONNXQ_ALLOW_UNAUTHENTICATED"] = "true"
        commands = {
            "gateway": [
                python,
                "-m",
                "gunicorn",
                "-c",
                str(gunicorn_config_path()),
                "gateway:create_app()",
            ],
            # The Open Inference Protocol over gRPC, on ONNXQ_GRPC_PORT (0: not started).
            "grpc": [python, "-m", "gateway.grpc_api"],
            "worker": [python, "-m", "worker"],
            # Exactly one beat: it schedules the reconciler and the drift check.
            "beat": [python, "-m", "worker.beat"],
        }
        if self.settings.grpc_port == 0:
            del commands["grpc"]
        for name, command in commands.items():
            # Own session: Ctrl-C reaches only us, and we stop the children in order.
            self.children[name] = subprocess.Popen(command, env=env, start_new_session=True)
            log.info("process_started", process=name, pid=self.children[name].pid)

    def stop(self) -> None:
        """Stop in the order that loses nothing: no new work, no new schedule, then the worker.

        The gateway and the gRPC service go first (no job is accepted that nobody would run;
        their calls in flight finish), then beat, then the
        worker's warm shutdown: running jobs finish and are stored, the messages it holds go
        back to the queue. Redis stops last, so that all of that reaches it.
        """
        if self._stopping:
            return
        self._stopping = True
        # A second Ctrl-C while waiting means "now": kill what is left, still stop Redis cleanly.
        signal.signal(signal.SIGINT, self._kill_children)
        signal.signal(signal.SIGTERM, self._kill_children)
        grace = {
            "gateway": 30.0,
            "grpc": 30.0,
            "beat": 10.0,
            # As compose's stop_grace_period: the longest job may finish.
            "worker": self.settings.task_time_limit_seconds + 30.0,
        }
        for name in ("gateway", "grpc", "beat", "worker"):
            child = self.children.get(name)
            if child is None:
                continue
            if child.poll() is None:
                log.info("process_stopping", process=name, pid=child.pid)
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(grace[name])
            except subprocess.TimeoutExpired:
                log.error("process_killed", process=name, pid=child.pid, after_s=grace[name])
                child.kill()
                child.wait()
            log.info("process_stopped", process=name, returncode=child.returncode)
        if self.redis is not None:
            self.redis.stop()
            log.info("redis_stopped")

    def _kill_children(self, _signum: int, _frame: object) -> None:
        log.warning("stopping_now", hint="second signal: killing the remaining processes")
        for child in self.children.values():
            if child.poll() is None:
                child.kill()

    def run(self) -> int:
        """Run until Ctrl-C / SIGTERM (exit 0) or until a child dies (exit 1)."""

        def _on_signal(signum: int, _frame: object) -> None:
            raise KeyboardInterrupt

        # SIGINT too: a shell that starts us in the background leaves it ignored otherwise.
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        try:
            self.ensure_redis()
            self.start_children()
            print(try_it(self.settings), flush=True)
            while True:
                for name, child in self.children.items():
                    if child.poll() is not None:
                        log.error("process_exited", process=name, returncode=child.returncode)
                        return 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
        finally:
            self.stop()


def gunicorn_config_path() -> Path:
    """Locate gateway/gunicorn_conf.py without importing the gateway package.

    gunicorn's `-c python:gateway.gunicorn_conf` would import `gateway` (and so
    onnxruntime) in the master; the forked workers then inherit ORT's global
    state and abort with std::system_error when they exit.
    """
    spec = importlib.util.find_spec("gateway")
    if spec is None or spec.origin is None:
        raise RuntimeError("the gateway package is not installed")
    return Path(spec.origin).parent / "gunicorn_conf.py"


def _without_password(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def try_it(settings: Settings) -> str:
    base = f"http://127.0.0.1:{settings.gateway_port}"
    row = "[17.99,10.38,122.8,1001,0.1184,0.2776,0.3001,0.1471,0.2419,0.07871,1.095,0.9053,8.589,153.4,0.006399,0.04904,0.05373,0.01587,0.03003,0.006193,25.38,17.33,184.6,2019,0.1622,0.6656,0.7119,0.2654,0.4601,0.1189]"  # noqa: E501
    return "\n".join(
        [
            "",
            f"onnxq is starting on {base} (Ctrl-C stops everything). Try:",
            f"  curl -s {base}/ready",
            f"  curl -s -X POST {base}/v1/models/breast-cancer/predict \\",
            f"       -H 'Content-Type: application/json' -d '{{\"instances\": [{row}]}}'",
            f"  curl -s -i -X POST {base}/v1/models/breast-cancer/jobs \\",
            f"       -H 'Content-Type: application/json' -d '{{\"instances\": [{row}]}}'",
            f"  curl -s {base}/v1/jobs/<job_id from the Location header>",
            f"The Open Inference Protocol: {base}/v2 (HTTP) and 127.0.0.1:{settings.grpc_port} "
            "(gRPC)."
            if settings.grpc_port
            else "",
            "",
        ]
    )
