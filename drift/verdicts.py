"""A feature's current counts against its reference, as one FeatureReport: PSI over smoothed
shares, the missing and unseen rates, and each test's verdict from drift/decision.py."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from drift.decision import (
    Family,
    corrected,
    debiased_psi,
    minimum_window,
    psi_alert_level,
    psi_p_value,
    rate_alert_level,
    rate_minimum_window,
    rate_p_value,
    rate_shown,
    unseen_alert_level,
    unseen_minimum_window,
    unseen_shown,
)
from drift.psi import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_ROWS,
    DEFAULT_MISSING_THRESHOLD,
    DEFAULT_THRESHOLD,
    DEFAULT_UNSEEN_THRESHOLD,
    ROWS_PER_BIN,
    SMOOTHING,
    FeatureReport,
    Verdict,
    noise_level,
    psi,
    shares,
    smoothed_shares,
)

if TYPE_CHECKING:  # drift.profile needs pandas, which the gateway's image does not carry
    from drift.feature_bins import CategoricalFeature, NumericFeature


def verdict(
    value: float,
    alert_level: float,
    current_rows: int,
    minimum_rows: int | None,
    floor_rows: int = 0,
) -> Verdict:
    """'drift' above the alert level (with at least `floor_rows`: the approximation's own
    floor); 'stable' only from the minimum window on, which could have seen a drift of twice the
    threshold; 'insufficient data' otherwise."""
    return decided(value > alert_level, current_rows, minimum_rows, floor_rows)


def decided(
    shown: bool, current_rows: int, minimum_rows: int | None, floor_rows: int = 0
) -> Verdict:
    """A test's verdict from whether the window showed its effect above the threshold."""
    if current_rows < floor_rows or current_rows == 0:
        return "insufficient data"
    if shown:
        return "drift"
    if minimum_rows is None or current_rows < minimum_rows:
        return "insufficient data"
    return "stable"


def compare(
    feature: NumericFeature | CategoricalFeature,
    counts: Sequence[int] | np.ndarray,
    missing: int = 0,
    *,
    family: Family,
    threshold: float = DEFAULT_THRESHOLD,
    min_rows: int = DEFAULT_MIN_ROWS,
    confidence: float = DEFAULT_CONFIDENCE,
    missing_threshold: float = DEFAULT_MISSING_THRESHOLD,
    reference_total: int | None = None,
    smoothing: float = SMOOTHING,
    unseen: int | None = None,
    unseen_threshold: float = DEFAULT_UNSEEN_THRESHOLD,
) -> FeatureReport:
    """Report on one feature from its current bin ``counts`` and ``missing`` count, as part of
    the ``family``'s tests: its bins, its missing rate, and (given ``unseen``, the current values
    beyond the training range or of no training category) its unseen rate.

    ``reference_total`` is the number of training rows, missing ones included (the profile's
    ``rows``); by default it is derived from the feature's non-missing rows and missing rate.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape != (feature.n_bins,):
        raise ValueError(f"{feature.name}: {counts.size} counts for {feature.n_bins} bins")
    n, m, bins, alpha = feature.rows, int(counts.sum()), feature.n_bins, family.per_test
    reference = smoothed_shares(np.asarray(feature.shares) * n, smoothing)
    value = psi(reference, smoothed_shares(counts, smoothing), 0.0) if m else None
    level = psi_alert_level(bins, n, m, threshold, alpha) if m else None
    needed = minimum_window(bins, n, threshold, alpha)
    floor = max(ROWS_PER_BIN * bins, min_rows)
    total = m + missing
    if reference_total is None:
        kept = 1.0 - feature.missing_rate
        reference_total = round(feature.rows / kept) if kept > 0 else 0
    current_rate = missing / total if total else 0.0
    rate = feature.missing_rate
    missing_level = rate_alert_level(rate, reference_total, total, missing_threshold, alpha)
    missing_shown = rate_shown(missing, total, rate, reference_total, missing_threshold, alpha)
    missing_needed = rate_minimum_window(rate, reference_total, missing_threshold, alpha)
    unseen_fields = (
        _unseen_fields(feature, m, unseen, unseen_threshold, alpha, family, min_rows)
        if unseen is not None and feature.tracks_unseen
        else {}
    )
    return FeatureReport(
        **unseen_fields,
        name=feature.name,
        kind=feature.kind,
        verdict=verdict(value or 0.0, level or math.inf, m, needed, floor),
        psi=value,
        psi_debiased=debiased_psi(value, bins, n, m) if value is not None else None,
        alert_level=level,
        p_value=corrected(psi_p_value(value, bins, n, m), family) if value is not None else None,
        minimum_rows=needed,
        noise_level=noise_level(bins, n, m, confidence) if m else None,
        threshold=threshold,
        bins=feature.bin_labels,
        reference_shares=list(feature.shares),
        current_shares=shares(counts).tolist(),
        current_counts=counts.tolist(),
        reference_rows=n,
        current_rows=m,
        current_missing=int(missing),
        reference_missing_rate=rate,
        current_missing_rate=current_rate,
        missing_verdict=decided(missing_shown, total, missing_needed, min_rows),
        missing_alert_level=missing_level if total and reference_total else None,
        missing_p_value=corrected(rate_p_value(rate, reference_total, current_rate, total), family)
        if total and reference_total
        else None,
        missing_threshold=missing_threshold,
    )


def _unseen_fields(
    feature: NumericFeature | CategoricalFeature,
    present: int,
    unseen: int,
    threshold: float,
    alpha: float,
    family: Family,
    min_rows: int,
) -> dict[str, object]:
    """The unseen-rate test: its rise over the training's, among the non-missing values."""
    reference = 0.0 if feature.kind == "numeric" else float(feature.shares[-1])
    rate = unseen / present if present else 0.0
    level = unseen_alert_level(reference, feature.rows, present, threshold, alpha)
    needed = unseen_minimum_window(reference, feature.rows, threshold, alpha)
    shown = unseen_shown(unseen, present, reference, feature.rows, threshold, alpha)
    return {
        "reference_unseen_rate": reference,
        "current_unseen_rate": rate,
        "unseen_verdict": decided(shown, present, needed, min_rows),
        "unseen_alert_level": level if present and feature.rows else None,
        "unseen_p_value": corrected(rate_p_value(reference, feature.rows, rate, present), family)
        if present and feature.rows
        else None,
        "unseen_threshold": threshold,
    }
