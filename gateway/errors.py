"""One place that turns every error into a JSON body with the right status, for /v1 and /v2.

Every error first becomes a `Problem` (status, type, message, details, headers): an OnnxqError
carries its own status and type, an HTTPException its code, anything else is a 500 that is
logged. Then the API the request belongs to writes the body in its own shape: /v1's
`{"error": {"type", "message", "details"?}}` or the Open Inference Protocol's
`{"error": "<message>"}` for /v2.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from onnxq.errors import InvalidInput, OnnxqError, TooManyRows, Unauthorized

log = structlog.get_logger("onnxq.gateway")

INTERNAL_ERROR_MESSAGE = "internal error; quote the X-Request-ID header when reporting it"


@dataclass(frozen=True)
class Problem:
    """What went wrong, before an API writes it down."""

    status: int
    type: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorShape:
    """How one API writes a Problem: the body under "error", and statuses it answers otherwise."""

    body: Callable[[Problem], Any]
    # Problem types this API answers with 400 whatever their own status.
    bad_request_types: frozenset[str] = frozenset()

    def render(self, problem: Problem) -> Response:
        response = jsonify(error=self.body(problem))
        response.status_code = 400 if problem.type in self.bad_request_types else problem.status
        response.headers.update(problem.headers)
        return response


def _v1_body(problem: Problem) -> dict[str, Any]:
    body: dict[str, Any] = {"type": problem.type, "message": problem.message}
    if problem.details:
        body["details"] = problem.details
    return body


V1 = ErrorShape(body=_v1_body)
# The protocol's {"error": "<message>"}; invalid input and too many rows are bad requests there.
V2 = ErrorShape(
    body=lambda problem: problem.message,
    bad_request_types=frozenset({InvalidInput.error_type, TooManyRows.error_type}),
)
V2_PREFIX = "/v2"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def problem_of(error: Exception) -> Problem:
    """The Problem an error stands for; an unexpected one is logged with its exception type."""
    if isinstance(error, OnnxqError):
        challenge = isinstance(error, Unauthorized)
        headers = {"WWW-Authenticate": 'Bearer realm="onnxq"'} if challenge else {}
        return Problem(error.status_code, error.error_type, error.message, error.details, headers)
    if isinstance(error, HTTPException):
        valid_methods = getattr(error, "valid_methods", None)
        headers = {"Allow": ", ".join(valid_methods)} if error.code == 405 and valid_methods else {}
        message = error.description or error.name
        return Problem(error.code or 500, _snake(type(error).__name__), message, headers=headers)
    g.exception_type = type(error).__name__
    log.exception("unhandled_error", error=repr(error), exception_type=g.exception_type)
    return Problem(500, "internal_error", INTERNAL_ERROR_MESSAGE)


def _shape(error: Exception) -> ErrorShape:
    """The shape of the API the request belongs to: its blueprint, else (routing) its path."""
    if request.blueprint == "v2":
        return V2
    # 404/405 from routing happen before any blueprint is chosen: the path says which API.
    # Other errors of an unrouted request (a missing key) keep the default shape, as before.
    under_v2 = request.path == V2_PREFIX or request.path.startswith(V2_PREFIX + "/")
    return V2 if under_v2 and error is request.routing_exception else V1


def handle_error(error: Exception) -> Response:
    """The one error handler: note the type for the request log, render in the API's shape."""
    problem = problem_of(error)
    g.error_type = problem.type
    return _shape(error).render(problem)


def init_app(app: Flask) -> None:
    # Exception covers OnnxqError and HTTPException too; routing errors reach it as well.
    app.register_error_handler(Exception, handle_error)
