"""What Celery beat runs, and when: one entry per periodic task, by task name."""

from __future__ import annotations

from typing import Any

from onnxq.celery_config import RECONCILE_TASK
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
    }
