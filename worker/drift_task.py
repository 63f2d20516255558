"""The scheduled drift check: every model's default version, one after another.

`run_drift_check` is a plain function (the Celery task in worker/app.py only calls it), so tests
run it directly. One model failing (no profile, unreadable log) is logged and the others still run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from onnxq.errors import DriftProfileMissing, OnnxqError
from onnxq.models.repository import ModelRepository
from onnxq.settings import Settings
from onnxq.telemetry.drift_check import check_model

log = structlog.get_logger("onnxq.worker")


def run_drift_check(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Check every model's default version; return, per model, what happened."""
    repository = ModelRepository(settings.model_dir)
    outcomes: dict[str, Any] = {}
    for name in repository.names():
        try:
            check = check_model(settings, name, now=now, repository=repository)
        except DriftProfileMissing as exc:
            log.warning("drift_check_skipped", model=name, reason=exc.message)
            outcomes[name] = {"status": "no_profile"}
        except (OnnxqError, OSError, ValueError) as exc:
            log.error("drift_check_failed", model=name, error=f"{type(exc).__name__}: {exc}")
            outcomes[name] = {"status": "failed", "error": str(exc)}
        else:
            outcomes[name] = {
                "status": "checked",
                "version": check.report.version,
                "rows": check.report.rows,
                "drifted": check.report.drifted,
                "webhook": check.webhook.value,
                "report": str(check.files.json),
            }
    return outcomes
