"""`python -m worker.beat`: the one Celery beat process; it only sends tasks by name."""

from __future__ import annotations

import sys
from typing import Any

from celery.signals import setup_logging

from onnxq.broker.celery_app import make_celery
from onnxq.settings import Settings
from onnxq.telemetry.logs import configure_logging
from worker.schedule import beat_schedule


def main(argv: list[str] | None = None) -> None:
    settings = Settings()
    configure_logging(settings.log_level, process="beat")

    def _configure_logging(**_: Any) -> None:
        # Connecting this signal stops Celery from installing its own handlers.
        configure_logging(settings.log_level, process="beat")

    setup_logging.connect(_configure_logging, weak=False)
    app = make_celery(settings, main="onnxq-beat")
    app.conf.beat_schedule = beat_schedule(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    extra = list(sys.argv[1:] if argv is None else argv)
    app.start(
        [
            "--quiet",  # no banner: stdout carries JSON log lines only
            "beat",
            "--loglevel",
            settings.log_level,
            "--schedule",
            str(settings.state_dir / "celerybeat-schedule"),
            *extra,
        ]
    )


if __name__ == "__main__":
    main()
