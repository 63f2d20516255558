"""Request ids and exactly one structured log event per request."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from flask import Flask, Response, g, request

log = structlog.get_logger("onnxq.gateway")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is echoed into logs and headers: accept only a tame alphabet.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _begin_request() -> None:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = offered if _SAFE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
    g.started = time.perf_counter()
    # gthread handler threads start with an empty context: bind everything here.
    structlog.contextvars.bind_contextvars(request_id=g.request_id, process="gateway")


def _finish_request(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    fields = {
        key: g.get(key)
        for key in ("model", "version", "rows", "job_id", "error_type", "exception_type")
        if g.get(key) is not None
    }
    duration_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    level = "warning" if response.status_code >= 500 else "info"
    getattr(log, level)(
        "request",
        method=request.method,
        path=request.path,
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
