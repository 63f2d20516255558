"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from gateway.openapi import documented
from gateway.responses import HealthResponse, ReadyResponse
from gateway.services import current_services

bp = Blueprint("health", __name__)


@bp.get("/health")
@documented(responses={200: HealthResponse}, public=True)
def health() -> ResponseReturnValue:
    """Answer at once: the process is up. Touches no dependency."""
    return jsonify(status="ok")


@bp.get("/ready")
@documented(responses={200: ReadyResponse, 503: ReadyResponse}, public=True)
def ready() -> ResponseReturnValue:
    """Say whether this process can serve: models loaded and Redis answering."""
    services = current_services()
    # Every model's default version, every time: a model added after start-up
    # (or a failed first load) is loaded here. Already-loaded ones are cached.
    models_ready = services.load_models()
    redis_ready = services.redis_ready()
    checks = {"models": models_ready, "redis": redis_ready}
    is_ready = models_ready and redis_ready
    body = {"status": "ready" if is_ready else "not_ready", "checks": checks}
    return jsonify(body), 200 if is_ready else 503
