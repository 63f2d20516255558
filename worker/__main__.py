"""`python -m worker [celery worker options]`: settings are read here, at process start."""

from __future__ import annotations

import sys

from onnxq.celery_config import callback_queue
from onnxq.logs import configure_logging
from onnxq.settings import Settings
from worker.app import create_worker_app


def main(argv: list[str] | None = None) -> None:
    settings = Settings()
    configure_logging(settings.log_level, process="worker")
    app = create_worker_app(settings)
    extra = list(sys.argv[1:] if argv is None else argv)
    app.worker_main(
        [
            "--quiet",  # no ASCII banner: stdout carries JSON log lines only
            "worker",
            "--loglevel", settings.log_level,
            "--concurrency", str(settings.worker_concurrency),
            "--queues", f"{settings.queue_name},{callback_queue(settings)}",
            "--without-gossip",
            "--without-mingle",
            *extra,
        ]
    )  # fmt: skip


if __name__ == "__main__":
    main()
