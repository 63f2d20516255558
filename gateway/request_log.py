"""Request ids and exactly one structured log event per request."""

from __future__ import annotations

import os
import re
import time

import structlog
from flask import Flask, Response, g, request

log = structlog.get_logger("onnxq.gateway")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is echoed into logs and headers: accept only a tame alphabet.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# What a view may note on `g` for the request's log event.
LOGGED_FIELDS = ("model", "version", "rows", "job_id", "jobs", "error_type", "exception_type")


def _begin_request() -> None:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = offered if _SAFE_REQUEST_ID.fullmatch(offered) else os.urandom(16).hex()
    state = g._get_current_object()  # one proxy lookup, not one per attribute
    state.request_id = request_id
    state.started = time.perf_counter()
    # Each connection's greenlet starts with an empty context: bind everything here.
    structlog.contextvars.bind_contextvars(request_id=request_id, process="gateway")


def _finish_request(response: Response) -> Response:
    state = g._get_current_object()
    current = request._get_current_object()  # type: ignore[attr-defined]
    response.headers[REQUEST_ID_HEADER] = getattr(state, "request_id", "")
    fields = {
        key: value for key in LOGGED_FIELDS if (value := getattr(state, key, None)) is not None
    }
    started = getattr(state, "started", None)
    duration_ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    (log.warning if response.status_code >= 500 else log.info)(
        "request",
        method=current.method,
        path=current.path,
        status=response.status_code,
        duration_ms=round(duration_ms, 3),
        **fields,
    )
    return response


def _clear_context(_exc: BaseException | None) -> None:
    structlog.contextvars.unbind_contextvars("request_id")


def init_app(app: Flask) -> None:
    app.before_request(_begin_request)
    app.after_request(_finish_request)
    app.teardown_request(_clear_context)
