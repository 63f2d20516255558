"""One drift check: a model version's profile against its logged rows, written up and alerted on.

Shared by the scheduled Celery task (worker/drift_task.py) and `onnxq drift`; the measuring itself
is the pure drift/ library. The alert is a `drift_alert` log event and, when
ONNXQ_DRIFT_WEBHOOK_URL is set, a JSON POST with bounded retries that never raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import structlog

from drift.alert import ALERT_EVENT, alert_payload
from drift.psi import DriftReport
from drift.report_files import ReportFiles, report_directory, write_report
from onnxq.backoff import backoff_seconds
from onnxq.destinations import DestinationPolicy
from onnxq.errors import DriftProfileMissing, ModelNotFound
from onnxq.models.manifest import Manifest
from onnxq.models.repository import ModelRepository
from onnxq.settings import Settings
from onnxq.telemetry import metrics
from onnxq.webhook import DestinationRefused, WebhookFailed, post_json

if TYPE_CHECKING:
    from drift.log_reader import Progress

log = structlog.get_logger("onnxq.drift")


class WebhookOutcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed; logged, never raised
    NOT_CONFIGURED = "not_configured"
    NO_ALERT = "no_alert"


@dataclass(frozen=True)
class DriftCheck:
    """What one check found and where it wrote it."""

    report: DriftReport
    files: ReportFiles
    alert: dict[str, Any] | None
    webhook: WebhookOutcome


def _summary(feature: dict[str, Any]) -> dict[str, Any]:
    summary = {"name": feature["name"], "psi": feature["psi"]}
    if feature["missing_verdict"] == "drift":
        summary["missing_rate"] = feature["current_missing_rate"]
    return summary


def send_alert(payload: dict[str, Any], settings: Settings) -> WebhookOutcome:
    """Log the alert, then deliver it to the webhook if one is set; never raises."""
    log.warning(
        ALERT_EVENT,
        model=payload["model"],
        version=payload["version"],
        features=[_summary(f) for f in payload["features"]],
        outputs=[_summary(f) for f in payload["outputs"]],
        rows=payload["rows"],
    )
    if settings.drift_webhook_url is None:
        return WebhookOutcome.NOT_CONFIGURED
    url = settings.drift_webhook_url.get_secret_value()
    attempts = settings.drift_webhook_attempts
    policy = DestinationPolicy.parse(settings.outbound_allow)
    for attempt in range(1, attempts + 1):
        try:
            post_json(
                url, payload, settings.drift_webhook_timeout_seconds, "onnxq-drift", policy=policy
            )
        except (WebhookFailed, ValueError) as exc:
            # ValueError: a malformed URL. The URL may hold a token: it is never logged
            # (a refused destination's message names its host and address, not its path).
            final = attempt == attempts or isinstance(exc, DestinationRefused)
            (log.error if final else log.warning)(
                "drift_webhook",
                status="failed" if final else "retry",
                model=payload["model"],
                attempt=attempt,
                max_attempts=attempts,
                error=f"{type(exc).__name__}: {exc}",
            )
            if final:
                return WebhookOutcome.FAILED
            time.sleep(backoff_seconds(attempt - 1, settings.drift_webhook_backoff_seconds))
            continue
        log.info("drift_webhook", status="delivered", model=payload["model"], attempt=attempt)
        return WebhookOutcome.DELIVERED
    return WebhookOutcome.FAILED  # pragma: no cover - attempts >= 1


def unprofiled_inputs(manifest: Manifest) -> dict[str, str]:
    """A tensor model's inputs, each with why the drift profile leaves it out."""
    if manifest.tabular:
        return {}
    return {
        spec.name: f"input of shape {['N', *spec.shape[1:]]} ({spec.dtype}): not a table of "
        "features, so not profiled; the model's outputs are"
        for spec in manifest.inputs
    }


def check_model(
    settings: Settings,
    name: str,
    version: int | None = None,
    *,
    days: int | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
    repository: ModelRepository | None = None,
    progress: Callable[[Progress], None] | None = None,
    alert: bool = True,
) -> DriftCheck:
    """Measure drift of ``name`` (its default version unless ``version``), write the reports
    under ``<state_dir>/drift/<name>/`` and raise the alert if anything drifted (and ``alert``)."""
    repository = repository or ModelRepository(settings.model_dir)
    resolved = repository.default_version(name) if version is None else version
    if resolved not in repository.versions(name):
        raise ModelNotFound(name, resolved)
    path = repository.paths(name, resolved).profile
    if not path.is_file():
        raise DriftProfileMissing(name, resolved)
    # Here, not at the top: the log reader needs pandas, which a worker process then loads only
    # when it runs a drift check, not at every start (215 ms, ~40 MB of memory per process).
    from drift.compute import compute_drift
    from drift.profile import ReferenceProfile

    started = time.perf_counter()
    report = compute_drift(
        ReferenceProfile.load(path),
        settings.prediction_log_dir,
        name,
        version=resolved,
        days=days or settings.drift_window_days,
        now=now,
        threshold=settings.drift_threshold,
        min_rows=settings.drift_min_rows,
        missing_threshold=settings.drift_missing_threshold,
        unseen_threshold=settings.drift_unseen_threshold,
        family_alpha=settings.drift_family_alpha,
        progress=progress,
        since=since,
    )
    manifest = repository.manifest(name, resolved)
    if manifest.class_names:  # the report's label bars then say "0 (malignant)"
        labels = [str(label) for label in manifest.class_labels]
        report.class_names = dict(zip(labels, manifest.class_names, strict=False))
    files = write_report(
        report, report_directory(settings.state_dir, name), keep=settings.drift_history_keep
    )
    for feature in [*report.features, *report.outputs]:  # the scheduled check and `onnxq drift`
        if feature.psi is not None:
            metrics.record_drift(name, resolved, feature.name, feature.psi, feature.drifted)
    payload = alert_payload(report)
    webhook = send_alert(payload, settings) if payload and alert else WebhookOutcome.NO_ALERT
    log.info(
        "drift_check",
        model=name,
        version=resolved,
        rows=report.rows,
        drifted=report.drifted,
        insufficient=[f.name for f in report.features if f.verdict == "insufficient data"],
        corrupt_lines=report.corrupt_lines,
        webhook=webhook.value,
        report=str(files.json),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return DriftCheck(report, files, payload, webhook)
