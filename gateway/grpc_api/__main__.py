"""`python -m gateway.grpc_api`: the gRPC service, ONNXQ_GRPC_WORKERS server processes.

A small supervisor, as gunicorn's master is for HTTP: it checks the port is free, starts the
server processes (gateway/grpc_api/server.py; each binds the port with SO_REUSEPORT), serves
their Prometheus metrics on ONNXQ_GRPC_METRICS_PORT from the multiprocess directory they share,
starts again one that dies, and on SIGTERM or SIGINT stops them all gracefully. `make run` and
compose start it beside the HTTP gateway.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import structlog

from onnxq.settings import Settings
from onnxq.telemetry import multiprocess_metrics
from onnxq.telemetry.logs import configure_logging

log = structlog.get_logger("onnxq.gateway")
STOP_SECONDS = 15.0  # the servers' grace, and a little more
FAST_EXITS = 5  # a process that dies this often within a minute: give up, let the host restart


def port_is_free(host: str, port: int) -> bool:
    """No socket holds the port (a server sharing it would take a share of our calls)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def serve_metrics(settings: Settings) -> None:
    if settings.grpc_metrics_port == 0:
        return
    from prometheus_client import start_http_server

    from onnxq.telemetry.metrics import scrape_registry

    try:
        start_http_server(
            settings.grpc_metrics_port, settings.grpc_host, registry=scrape_registry()
        )
    except OSError as exc:
        log.error("metrics_server_failed", port=settings.grpc_metrics_port, error=repr(exc))


def main() -> int:
    settings = Settings()
    configure_logging(settings.log_level, process="grpc")
    if settings.grpc_port == 0:
        log.info("grpc_disabled", reason="ONNXQ_GRPC_PORT=0")
        return 0
    if not port_is_free(settings.grpc_host, settings.grpc_port):
        log.error("grpc_port_in_use", host=settings.grpc_host, port=settings.grpc_port)
        return 1
    directory = multiprocess_metrics.prepare(settings.metrics_dir, "grpc")
    serve_metrics(settings)
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    command = [sys.executable, "-m", "gateway.grpc_api.server"]
    children = [
        subprocess.Popen(command, env=os.environ.copy()) for _ in range(settings.grpc_workers)
    ]
    exits: list[float] = []
    try:
        while not stopping.wait(0.5):
            for index, child in enumerate(children):
                if child.poll() is None:
                    continue
                log.error("grpc_process_exited", pid=child.pid, returncode=child.returncode)
                exits = [t for t in exits if time.monotonic() - t < 60] + [time.monotonic()]
                if len(exits) >= FAST_EXITS:
                    log.error("grpc_giving_up", exits=len(exits))
                    return 1
                children[index] = subprocess.Popen(command, env=os.environ.copy())
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        multiprocess_metrics.remove(directory)
        log.info("grpc_stopped")


if __name__ == "__main__":
    sys.exit(main())
