"""The JSON log lines every process writes (onnxq/telemetry/logs.py), read as a log shipper would.

Run in a child process: configure_logging sets process-wide logging state.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = """
import logging, structlog
from onnxq.telemetry.logs import configure_logging
configure_logging("INFO", process="gateway")
log = structlog.get_logger("onnxq.gateway")
structlog.contextvars.bind_contextvars(request_id="req-1")
log.info("request", status=202, duration_ms=1.5, settings={"rows": 3})
log.debug("too_detailed")
logging.getLogger("gunicorn.error").info("Booting worker with pid: %s", 42)
api_key = "sk-do-not-log"
try:
    1 / 0
except ZeroDivisionError:
    log.exception("unhandled_error", exception_type="ZeroDivisionError")
"""


def lines() -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True
    ).stdout
    assert "sk-do-not-log" not in out, "a local variable reached the log"
    return [json.loads(line) for line in out.splitlines()]


def test_one_json_line_per_event_with_the_bound_context_and_no_secret_locals() -> None:
    request, gunicorn, error = lines()  # the debug event is filtered out at INFO
    assert request["event"] == "request"
    assert (request["status"], request["settings"]) == (202, {"rows": 3})
    for line in (request, gunicorn, error):
        assert line["process"] == "gateway"
        assert line["request_id"] == "req-1"
        assert line["timestamp"].endswith("Z")
    assert (request["level"], request["logger"]) == ("info", "onnxq.gateway")
    assert (gunicorn["event"], gunicorn["logger"]) == (
        "Booting worker with pid: 42",
        "gunicorn.error",
    )
    assert (error["level"], error["exception_type"]) == ("error", "ZeroDivisionError")
    [frame] = error["exception"][0]["frames"]
    assert "locals" not in frame


REPLACED_STDOUT = """
import io, sys, structlog
from onnxq.telemetry.logs import configure_logging
configure_logging("INFO", process="worker")
log = structlog.get_logger("onnxq.worker")
real = sys.stdout
gone = io.TextIOWrapper(io.BytesIO())
gone.close()
sys.stdout = gone  # a closed stream (a test runner's capture that has ended)
log.info("dropped")
captured = io.StringIO()
sys.stdout = captured  # a stream without a byte buffer
log.info("captured")
sys.stdout = real
print(captured.getvalue(), end="")
log.info("back")
"""


def test_logs_follow_sys_stdout_and_a_closed_one_never_breaks_the_caller() -> None:
    out = subprocess.run(
        [sys.executable, "-c", REPLACED_STDOUT], capture_output=True, text=True, check=True
    ).stdout
    assert [json.loads(line)["event"] for line in out.splitlines()] == ["captured", "back"]
