"""A DriftReport around given feature reports, for tests of what reads reports (the route, the
HTML page): the window and the bookkeeping fields filled with plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from drift import DriftReport, FeatureReport

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def drift_report(
    features: list[FeatureReport], *, model: str = "m", days: int = 7, **fields: Any
) -> DriftReport:
    values: dict[str, Any] = {
        "model": model,
        "version": 1,
        "window_start": NOW - timedelta(days=days),
        "window_end": NOW,
        "days": days,
        "rows": 1000,
        "created_at": NOW,
        "threshold": 0.2,
        "min_rows": 0,
        "tests": 3 * len(features),
        "files": [],
        "corrupt_lines": 0,
        "mismatched_lines": 0,
        "features": features,
    }
    values.update(fields)
    return DriftReport(**values)
