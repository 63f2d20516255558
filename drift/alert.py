"""The retraining alert a drift report raises: who drifted, by how much, as one JSON document."""

from __future__ import annotations

from typing import Any

from drift.psi import DriftReport, FeatureReport

ALERT_EVENT = "drift_alert"


def _drifted_feature(feature: FeatureReport) -> dict[str, Any]:
    return {
        "name": feature.name,
        "psi": feature.psi,
        "alert_level": feature.alert_level,
        "p_value": feature.p_value,
        "verdict": feature.verdict,
        "reference_missing_rate": feature.reference_missing_rate,
        "current_missing_rate": feature.current_missing_rate,
        "missing_verdict": feature.missing_verdict,
        "missing_p_value": feature.missing_p_value,
        "current_unseen_rate": feature.current_unseen_rate,
        "unseen_verdict": feature.unseen_verdict,
    }


def alert_payload(report: DriftReport) -> dict[str, Any] | None:
    """The alert for ``report``, or None when no feature and no model output drifted."""
    features = [_drifted_feature(f) for f in report.features if f.drifted]
    outputs = [_drifted_feature(f) for f in report.outputs if f.drifted]
    if not features and not outputs:
        return None
    return {
        "event": ALERT_EVENT,
        "model": report.model,
        "version": report.version,
        "window_start": report.window_start.isoformat(),
        "window_end": report.window_end.isoformat(),
        "rows": report.rows,
        "threshold": report.threshold,
        "features": features,
        "outputs": outputs,
        "created_at": report.created_at.isoformat(),
    }
