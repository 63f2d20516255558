"""One place that turns every error into a JSON body with the right status."""

from __future__ import annotations

import re

import structlog
from flask import Flask, g, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from onnxq.errors import OnnxqError, Unauthorized

log = structlog.get_logger("onnxq.gateway")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def handle_onnxq_error(error: OnnxqError) -> ResponseReturnValue:
    g.error_type = error.error_type
    response = jsonify(error=error.to_dict())
    response.status_code = error.status_code
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="onnxq"'
    return response


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    g.error_type = _snake(type(error).__name__)
    body = {"type": g.error_type, "message": error.description or error.name}
    response = jsonify(error=body)
    response.status_code = error.code or 500
    if error.code == 405 and error.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return response


def handle_unexpected_error(error: Exception) -> ResponseReturnValue:
    g.error_type = "internal_error"
    g.exception_type = type(error).__name__
    log.exception("unhandled_error", error=repr(error), exception_type=g.exception_type)
    body = {
        "type": "internal_error",
        "message": "internal error; quote the X-Request-ID header when reporting it",
    }
    return jsonify(error=body), 500


def init_app(app: Flask) -> None:
    app.register_error_handler(OnnxqError, handle_onnxq_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected_error)
