"""gunicorn settings, taken from the same ONNXQ_* settings as everything else.

Load it by path (`-c gateway/gunicorn_conf.py`), never as `python:gateway...`:
importing the gateway package in the master would load onnxruntime before the fork.

No preload: each worker process builds its own app, so every ONNX Runtime
session is created after the fork, never inherited from the master.
"""

import gc
import json
import os
import re
from pathlib import Path
from typing import Any

from gunicorn import glogging, util
from gunicorn.http import wsgi

from onnxq.settings import Settings
from onnxq.telemetry import multiprocess_metrics

_settings = Settings()
_metrics_dir: Path | None = None

bind = f"{_settings.gateway_host}:{_settings.gateway_port}"
# gunicorn's control socket is ~/.gunicorn/gunicorn.ctl by default, shared by every gunicorn of
# this user: this gateway's own goes under its state directory. (A path too long for a Unix
# socket only makes gunicorn log that the control socket could not start.)
control_socket = str((_settings.state_dir / "gunicorn.ctl").resolve())
workers = _settings.gateway_workers
# gevent: every connection is a greenlet, so requests that wait (`?wait=`, `Prefer: wait`, slow
# clients) cost a few KB each instead of one of a handful of threads; /health and predicts are
# served beside them. gunicorn monkey-patches the worker process before it loads the app.
worker_class = "gevent"
worker_connections = 1000
# Under gevent this bounds reading each request's line and headers (a connection that has not
# sent them in time is closed) and how long an idle keep-alive connection stays open. gunicorn's
# 2 s default closed connections without an answer when a loaded gateway took longer than that
# to read 500 requests arriving at once. Bodies have their own deadline (gateway/body.py).
keepalive = _settings.client_header_timeout_seconds
preload_app = False
timeout = 60
graceful_timeout = 20
# Workers touch a heartbeat file on every loop turn; on a disk-backed /tmp (Docker's
# overlay) that write can stall a request. /dev/shm is memory.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = None  # the app logs one JSON event per request itself


class _NoAccessLog(glogging.Logger):
    """gunicorn's logger, minus the access log: with `logconfig_dict` set, gunicorn builds an
    access record for every request even when `accesslog` is None (~5 % of a predict's CPU)."""

    def _compute_access_log_enabled(self) -> bool:
        return False


logger_class = _NoAccessLog
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "onnxq.telemetry.logs.json_formatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "root": {"level": _settings.log_level, "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
    },
}


def on_starting(_server: Any) -> None:
    """Give this master's workers an empty directory to share metric values through.

    Done here, once per master start (not on reload), and before anything imports
    prometheus_client: the forked workers inherit PROMETHEUS_MULTIPROC_DIR.
    """
    global _metrics_dir
    _settings.state_dir.mkdir(parents=True, exist_ok=True)  # for the control socket
    _metrics_dir = multiprocess_metrics.prepare(_settings.metrics_dir, "gateway")


def post_worker_init(_worker: Any) -> None:
    """The app is loaded: what it allocated so far (modules, the ONNX sessions, pydantic's
    schemas) lives as long as the process, so the garbage collector stops scanning it. Without
    `gc.freeze()` a full collection of the loaded gateway took 114 ms, a stall of every
    connection of this worker, once every ~20,000 requests (measured in-process).

    And three changes to gunicorn, none of which has a setting:

    - the errors gunicorn answers itself (431 headers too large, 414 line too long, 400 malformed
      request) are JSON in the gateway's /v1 shape, like every other error: it writes them with
      `gunicorn.util.write_error`, looked up on each error;
    - `Connection: close` from the app closes the connection after the answer;
    - an answer whose body is written whole goes out with its head in one send.
    """
    gc.freeze()
    util.write_error = _write_json_error
    wsgi.Response.process_headers = _honouring_connection_close(wsgi.Response.process_headers)
    wsgi.Response.write = _head_with_body(wsgi.Response.write)


def _honouring_connection_close(process_headers: Any) -> Any:
    """gunicorn drops an app's `Connection` header (hop-by-hop); `close` from the gateway
    (gateway/connections.py) should close the connection after the answer, and say so."""

    def process(response: Any, headers: Any) -> None:
        if any(k.lower() == "connection" and v.strip().lower() == "close" for k, v in headers):
            response.force_close()  # gunicorn then writes `Connection: close` itself
        process_headers(response, headers)

    return process


def _head_with_body(write: Any) -> Any:
    """gunicorn sends an answer's head and then its body: two syscalls, and two segments for
    the client to wake up for. A body written whole (its Content-Length, in one write, as
    Flask's answers are) goes out in the same send as the head; anything else as before."""

    def one_send(response: Any, data: Any) -> None:
        if (
            response.headers_sent
            or response.chunked
            or getattr(response, "_omits_body", True)
            or type(data) is not bytes
            or response.response_length != len(data)
        ):
            write(response, data)
            return
        head = response.default_headers()
        head.extend(f"{name}: {value}\r\n" for name, value in response.headers)
        response.headers_sent = True
        response.sent = len(data)
        util.write(response.sock, ("".join(head) + "\r\n").encode("latin-1") + data)

    return one_send


def _write_json_error(sock: Any, status: int, reason: str, message: str) -> None:
    kind = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")
    body = json.dumps({"error": {"type": kind, "message": message or reason}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def child_exit(_server: Any, worker: Any) -> None:
    # Imported here, after on_starting exported the directory.
    from onnxq.telemetry.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def on_exit(_server: Any) -> None:
    if _metrics_dir is not None and _settings.metrics_dir is None:
        multiprocess_metrics.remove(_metrics_dir)
