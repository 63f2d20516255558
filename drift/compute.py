"""compute_drift: a reference profile against a window of the prediction log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from drift.log_reader import DEFAULT_CHUNK_SIZE, DEFAULT_DAYS, FeatureBins, read_window
from drift.profile import ReferenceProfile
from drift.psi import (
    DEFAULT_MIN_ROWS,
    DEFAULT_THRESHOLD,
    EPSILON,
    DriftReport,
    FeatureReport,
    compare,
    sort_reports,
)


def compute_drift(
    profile: ReferenceProfile,
    log_dir: str | Path,
    model: str,
    version: int | None = None,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    min_rows: int = DEFAULT_MIN_ROWS,
    *,
    epsilon: float = EPSILON,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> DriftReport:
    """Compare the last ``days`` days of ``model``'s logged rows with ``profile``, per feature."""
    window = read_window(profile, log_dir, model, version, days, now, chunk_size)

    def report(bins: FeatureBins) -> FeatureReport:
        return compare(
            bins.feature,
            bins.counts,
            bins.missing,
            threshold=threshold,
            min_rows=min_rows,
            epsilon=epsilon,
        )

    outputs = [report(b) for b in (window.probability, window.label) if b is not None]
    return DriftReport(
        model=model,
        version=version,
        window_start=window.start,
        window_end=window.end,
        days=days,
        rows=window.rows,
        created_at=datetime.now(UTC),
        threshold=threshold,
        min_rows=min_rows,
        epsilon=epsilon,
        files=window.files,
        corrupt_lines=window.corrupt_lines,
        mismatched_lines=window.mismatched_lines,
        features=sort_reports([report(b) for b in window.features]),
        outputs=outputs,
    )
