"""The worker's `/metrics`: a small HTTP server in the Celery main process.

Prefork children record into the shared multiprocess directory; the main process
never runs jobs, so it only serves what the children wrote. Started before the
pool forks: the children inherit the listening socket but never run the server
thread (threads do not survive fork), so only the main process answers.
"""

from __future__ import annotations

import structlog

from onnxq.settings import Settings

log = structlog.get_logger("onnxq.worker")


def serve_metrics(settings: Settings) -> bool:
    """Start the server on `worker_metrics_port` (0: off); return whether it is serving."""
    if settings.worker_metrics_port == 0:
        return False
    # Imported here: the caller has exported PROMETHEUS_MULTIPROC_DIR by now.
    from prometheus_client import start_http_server

    from onnxq.telemetry.metrics import scrape_registry

    try:
        start_http_server(
            settings.worker_metrics_port, settings.worker_metrics_host, registry=scrape_registry()
        )
    except OSError as exc:
        # Metrics are for the operator; a taken port must not stop jobs from running.
        log.error("metrics_server_failed", port=settings.worker_metrics_port, error=repr(exc))
        return False
    log.info(
        "metrics_server_started",
        host=settings.worker_metrics_host,
        port=settings.worker_metrics_port,
    )
    return True
