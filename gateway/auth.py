"""API-key authentication on every route but the probes (health, readiness, metrics)."""

from __future__ import annotations

import hashlib
import hmac
import re

import structlog
from flask import Flask, current_app, request

from onnxq.errors import Unauthorized
from onnxq.settings import Settings

log = structlog.get_logger("onnxq.gateway")

# Probes must work without credentials: orchestrators and Prometheus call them.
# Swagger UI's own JavaScript and CSS are public vendor files, not API: open too,
# so that /docs (which needs a key) can load them in a browser.
OPEN_PATHS = re.compile(r"^/(health|ready|metrics|v2/health/(live|ready))/?$|^/docs/static/")


class AuthenticationNotConfigured(RuntimeError):
    """No API key is configured and development mode was not asked for."""


def presented_key() -> str | None:
    """Return the key from `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key") or None


def client_identity() -> str:
    """A stable, non-secret name for the caller: a digest of its API key ('' when open)."""
    key = presented_key()
    return hashlib.sha256(key.encode()).hexdigest()[:32] if key else ""


def key_is_valid(key: str, settings: Settings) -> bool:
    # Compare against every key, always, in constant time: timing says nothing.
    matches = [
        hmac.compare_digest(key.encode(), k.get_secret_value().encode()) for k in settings.api_keys
    ]
    return any(matches)


def _require_api_key() -> None:
    settings: Settings = current_app.config["SETTINGS"]
    if not settings.api_keys or OPEN_PATHS.match(request.path):
        return
    key = presented_key()
    if key is None:
        raise Unauthorized("this route needs an API key: 'Authorization: Bearer <key>'")
    if not key_is_valid(key, settings):
        raise Unauthorized("the API key is not valid")


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    if not settings.api_keys:
        if not settings.allow_unauthenticated:
            raise AuthenticationNotConfigured(
                "no API key configured: set ONNXQ_API_KEYS or ONNXQ_API_KEYS_FILE, or "
                "ONNXQ_ALLOW_UNAUTHENTICATED=true for development"
            )
        log.warning("authentication_disabled", reason="ONNXQ_ALLOW_UNAUTHENTICATED=true")
    app.before_request(_require_api_key)
