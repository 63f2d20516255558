"""Structured JSON logs on stdout, one event per request and per job.

onnxq's own events (structlog) are rendered by orjson and written as one line each straight to
stdout: no stdlib logging record, handler or formatter on the way, because the gateway writes one
per request. Other libraries' logs (gunicorn, Celery, kombu) go through stdlib logging and the same
JSON shape (`json_formatter`). Both carry `event`, `level`, `logger`, `timestamp` and the bound
context (`process`, `request_id`).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import orjson
import structlog

_SHARED_PROCESSORS: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class JsonLinesLogger:
    """structlog's final logger: writes each rendered event (bytes) as one line to stdout.

    stdout is looked up on every write, not kept: whoever replaces sys.stdout (a test runner's
    capture, a daemon's redirect) gets the lines, and a closed stream is never written to. A line
    that cannot be written is dropped, as stdlib logging's handlers do: logging never breaks the
    request or job that logs.
    """

    def __init__(self, name: str | None, lock: threading.Lock):
        self.name = name
        self._lock = lock

    def msg(self, line: bytes) -> None:
        stream = sys.stdout
        try:
            with self._lock:  # one whole line at a time, whichever thread logs
                buffer = getattr(stream, "buffer", None)
                if buffer is not None:
                    stream.flush()  # keep order with text written to the same stream
                    buffer.write(line + b"\n")
                    buffer.flush()
                else:
                    stream.write(line.decode() + "\n")
                    stream.flush()
        except (OSError, ValueError):  # closed or broken stdout
            pass

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


class JsonLinesLoggerFactory:
    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> JsonLinesLogger:
        return JsonLinesLogger(args[0] if args else None, self._lock)


def _logger_name(logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    name = getattr(logger, "name", None)
    if name is not None:
        event_dict.setdefault("logger", name)
    return event_dict


# Tracebacks as structured data, without the frames' local variables: those can hold request
# bodies or keys, and nothing secret goes into the logs.
_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def _orjson(event_dict: dict[str, Any], **_: Any) -> bytes:
    return orjson.dumps(event_dict, default=repr, option=orjson.OPT_NON_STR_KEYS)


def configure_logging(level: str = "INFO", process: str = "onnxq") -> None:
    """Send structlog events and stdlib logging (Celery, gunicorn) to stdout as JSON lines."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _TRACEBACKS,
            structlog.processors.JSONRenderer(serializer=_orjson),
        ],
        logger_factory=JsonLinesLoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # Not cached: a cached logger would keep the configuration it first saw, so a later
        # configure (or structlog.testing.capture_logs) would pass it by; ~2 us a call.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(process=process)


def json_formatter() -> logging.Formatter:
    """Formatter for logging.config dictionaries (gunicorn's logconfig_dict)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _TRACEBACKS,
            structlog.processors.JSONRenderer(),
        ],
    )
