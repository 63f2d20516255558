"""Reading a JSON request body with errors a client can act on."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType


def json_body() -> Any:
    """Return the parsed JSON body; 415 for another content type, 400 for broken JSON."""
    if not request.is_json:
        raise UnsupportedMediaType("send the body as JSON with 'Content-Type: application/json'")
    try:
        return request.get_json(force=True, cache=True)
    except BadRequest as exc:
        raise BadRequest("the request body is not valid JSON") from exc
