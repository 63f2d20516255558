"""What Celery beat runs, and when: one entry per periodic task, by task name."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab, schedule

from onnxq.broker.celery_app import DRIFT_TASK, RECONCILE_TASK, TIDY_LOG_TASK
from onnxq.settings import Settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Return Celery's `beat_schedule` for these settings."""
    return {
        "reconcile-jobs": {
            "task": RECONCILE_TASK,
            "schedule": settings.reconcile_interval_seconds,
            # A missed run is worthless once the next one is due.
            "options": {"expires": settings.reconcile_interval_seconds},
        },
        "drift-check": {
            "task": DRIFT_TASK,
            "schedule": periodic_schedule(settings.drift_schedule),
        },
        "tidy-prediction-log": {
            "task": TIDY_LOG_TASK,
            "schedule": periodic_schedule(settings.prediction_log_tidy_schedule),
        },
    }


def periodic_schedule(text: str) -> schedule:
    """A schedule setting (ONNXQ_DRIFT_SCHEDULE, ONNXQ_PREDICTION_LOG_TIDY_SCHEDULE) as a Celery
    schedule: seconds between runs, or a 5-field crontab."""
    try:
        return schedule(float(text))
    except ValueError:
        minute, hour, day_of_month, month_of_year, day_of_week = text.split()
        return crontab(minute, hour, day_of_week, day_of_month, month_of_year)
