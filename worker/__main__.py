"""`python -m worker [celery worker options]`: settings are read here, at process start."""

from __future__ import annotations

import atexit
import os
import sys

import structlog

from onnxq.broker.celery_app import callback_queue
from onnxq.settings import Settings, effective_configuration
from onnxq.telemetry import multiprocess_metrics
from onnxq.telemetry.logs import configure_logging

log = structlog.get_logger("onnxq.worker")


def main(argv: list[str] | None = None) -> None:
    settings = Settings()
    configure_logging(settings.log_level, process="worker")
    log.info("configuration", pid=os.getpid(), settings=effective_configuration(settings))
    # Before anything imports prometheus_client (worker.app does): see multiprocess_metrics.
    metrics_dir = multiprocess_metrics.prepare(settings.metrics_dir, "worker")
    if settings.metrics_dir is None:
        main_pid = os.getpid()
        atexit.register(
            lambda: os.getpid() == main_pid and multiprocess_metrics.remove(metrics_dir)
        )
    from worker.app import create_worker_app
    from worker.metrics_server import serve_metrics

    app = create_worker_app(settings)
    serve_metrics(settings)
    extra = list(sys.argv[1:] if argv is None else argv)
    app.worker_main(
        [
            "--quiet",  # no ASCII banner: stdout carries JSON log lines only
            "worker",
            "--loglevel",
            settings.log_level,
            "--concurrency",
            str(settings.worker_concurrency),
            "--queues",
            f"{settings.queue_name},{callback_queue(settings)}",
            "--without-gossip",
            "--without-mingle",
            *extra,
        ]
    )


if __name__ == "__main__":
    main()
