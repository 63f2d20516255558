"""The HTTP gateway: validates, enqueues, answers polls and serves synchronous predictions."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from flask import Flask

from gateway import (
    auth,
    connections,
    drift,
    errors,
    health,
    job_results,
    jobs,
    metrics,
    models,
    openapi,
    predict,
    queue_status,
    request_log,
    services,
    v2,
)
from gateway.json_provider import OrjsonProvider
from onnxq.settings import Settings, effective_configuration
from onnxq.telemetry.logs import configure_logging

log = structlog.get_logger("onnxq.gateway")


class _Gateway(Flask):
    """Flask with JSON by orjson, minus a check per hook and view on every request:
    `ensure_sync` asks whether each function is a coroutine (8 calls of inspect a request);
    every one here is plain `def`."""

    json_provider_class = OrjsonProvider

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return func


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the gateway app; `test_config` may carry SETTINGS, REDIS_CLIENT and CELERY_APP."""
    app = _Gateway(__name__)
    config = dict(test_config or {})
    settings: Settings = config.pop("SETTINGS", None) or Settings()
    app.config.from_mapping(SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.config.update(config)
    if not app.testing:
        configure_logging(settings.log_level, process="gateway")
    # Said once per gateway process: what it runs with, secrets left out.
    log.info("configuration", pid=os.getpid(), settings=effective_configuration(settings))

    request_log.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    connections.init_app(app)
    services.init_app(app)
    metrics.init_app(app)

    app.register_blueprint(health.bp)
    app.register_blueprint(predict.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(job_results.bp)
    app.register_blueprint(v2.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(drift.bp)
    app.register_blueprint(queue_status.bp)
    app.register_blueprint(metrics.bp)
    return app
