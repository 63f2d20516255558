"""API-key authentication for the /v1 routes; health and readiness stay open for probes."""

from __future__ import annotations

import hmac

from flask import Flask, current_app, request

from onnxq.errors import Unauthorized
from onnxq.settings import Settings

PROTECTED_PREFIX = "/v1/"


def presented_key() -> str | None:
    """Return the key from `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key") or None


def _require_api_key() -> None:
    settings: Settings = current_app.config["SETTINGS"]
    if not settings.api_keys or not request.path.startswith(PROTECTED_PREFIX):
        return
    key = presented_key()
    if key is None:
        raise Unauthorized("this route needs an API key: 'Authorization: Bearer <key>'")
    # Compare against every key in constant time so timing says nothing.
    matches = [hmac.compare_digest(key.encode(), k.get_secret_value().encode())
               for k in settings.api_keys]  # fmt: skip
    if not any(matches):
        raise Unauthorized("the API key is not valid")


def init_app(app: Flask) -> None:
    app.before_request(_require_api_key)
