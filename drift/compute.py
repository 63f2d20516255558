"""compute_drift: a reference profile against a window of the prediction log."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drift.decision import DEFAULT_FAMILY_ALPHA, Family
from drift.log_reader import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DAYS,
    FeatureBins,
    Progress,
    read_window,
)
from drift.profile import ReferenceProfile
from drift.psi import (
    DEFAULT_MIN_ROWS,
    DEFAULT_MISSING_THRESHOLD,
    DEFAULT_THRESHOLD,
    DEFAULT_UNSEEN_THRESHOLD,
    DriftReport,
    FeatureReport,
    sort_reports,
)
from drift.verdicts import compare


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
    family_alpha: float = DEFAULT_FAMILY_ALPHA,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    missing_threshold: float = DEFAULT_MISSING_THRESHOLD,
    unseen_threshold: float = DEFAULT_UNSEEN_THRESHOLD,
    progress: Callable[[Progress], None] | None = None,
    since: datetime | None = None,
) -> DriftReport:
    """Compare the last ``days`` days of ``model``'s logged rows with ``profile``, per feature;
    with no drift, the chance that anything is called drift is at most ``family_alpha``.

    ``progress``, if given, is called after every chunk (and once at the end) with how far the
    reading got, for a progress bar on large logs. ``since`` replaces ``days``: the window is
    then ``[since, now]``.
    """
    window = read_window(
        profile, log_dir, model, version, days, now, chunk_size, since=since, progress=progress
    )
    family = check_family(profile, family_alpha)

    def report(bins: FeatureBins) -> FeatureReport:
        return compare(
            bins.feature,
            bins.counts,
            bins.missing,
            family=family,
            threshold=threshold,
            min_rows=min_rows,
            missing_threshold=missing_threshold,
            reference_total=profile.rows,
            unseen=bins.unseen,
            unseen_threshold=unseen_threshold,
        )

    outputs = [report(b) for b in window.outputs]
    return DriftReport(
        model=model,
        version=version,
        window_start=window.start,
        window_end=window.end,
        days=math.ceil((window.end - window.start) / timedelta(days=1)),
        rows=window.rows,
        created_at=datetime.now(UTC),
        threshold=threshold,
        min_rows=min_rows,
        tests=family.tests,
        family_alpha=family.alpha,
        missing_threshold=missing_threshold,
        unseen_threshold=unseen_threshold,
        files=window.files,
        corrupt_lines=window.corrupt_lines,
        mismatched_lines=window.mismatched_lines,
        duplicate_lines=window.duplicate_lines,
        features=sort_reports([report(b) for b in window.features]),
        outputs=outputs,
        skipped=profile.skipped,
    )


def check_family(profile: ReferenceProfile, alpha: float = DEFAULT_FAMILY_ALPHA) -> Family:
    """The tests one check of `profile` makes: for every feature and profiled model output its
    bins, its missing rate and (where tracked) its unseen rate."""
    profiled = [*profile.features, *profile.outputs]
    return Family(tests=sum(3 if f.tracks_unseen else 2 for f in profiled), alpha=alpha)
