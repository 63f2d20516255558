"""Population Stability Index, its noise level, and the per-feature and whole-model reports.

PSI compares the share of rows in each bin of the reference (training) data, ``e``, with the share
in the current (logged) data, ``a``::

    PSI = Σ (aᵢ - eᵢ) · ln(aᵢ / eᵢ)

Every term is ≥ 0. ``psi`` floors both share vectors at ``epsilon`` (not renormalised), so that
hand-computed examples stay exact. A report (``compare``) first smooths both sides additively,
half a row in every bin (``SMOOTHING``, Jeffreys' prior): a bin empty on one side then has a
finite term that grows with the rows in the other, and an unseen category is weighed by how many
rows it holds, not by an arbitrary floor.

PSI of two samples of the *same* distribution is not 0: with ``n`` reference and ``m`` current rows
in ``B`` bins, ``PSI`` is approximately ``(1/n + 1/m) · χ²(B - 1)`` (Yurdakul 2018). The report
gives that 95 % noise level for reading; the verdict is drift/decision.py's minimum-effect test,
at a family-wise level over all the check's tests (``Family``): PSI above the **alert level**.

The missing rate (None / NaN values) is tracked apart from the bins, so PSI never sees it: its
rise over the reference's rate has its own alert level. A fall is reported but never flagged. A
feature counts as drifted (``FeatureReport.drifted``) when either its bins or its missing rate
drifted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field, computed_field

from drift.chi2 import chi2_quantile
from drift.decision import (
    Family,
    binomial_upper_tail,
    corrected,
    debiased_psi,
    minimum_window,
    psi_alert_level,
    psi_p_value,
    rate_alert_level,
    rate_minimum_window,
    rate_p_value,
    unseen_alert_level,
    unseen_bound,
    unseen_minimum_window,
)

if TYPE_CHECKING:
    from drift.profile import CategoricalFeature, NumericFeature

EPSILON = 1e-4
SMOOTHING = 0.5  # rows added to every bin, on both sides, before a report's PSI
DEFAULT_THRESHOLD = 0.2
DEFAULT_MIN_ROWS = 0  # current rows below which no verdict is given, besides ROWS_PER_BIN
ROWS_PER_BIN = 5  # fewer current rows than this per bin: no verdict (the chi-square's floor)
DEFAULT_CONFIDENCE = 0.95
DEFAULT_MISSING_THRESHOLD = 0.1
DEFAULT_UNSEEN_THRESHOLD = 0.01

Verdict = Literal["drift", "stable", "insufficient data"]


def psi(
    expected_shares: Sequence[float] | np.ndarray,
    actual_shares: Sequence[float] | np.ndarray,
    epsilon: float = EPSILON,
) -> float:
    """Σ (aᵢ - eᵢ)·ln(aᵢ/eᵢ), with both share vectors floored at ``epsilon`` (not renormalised)."""
    expected = np.asarray(expected_shares, dtype=np.float64)
    actual = np.asarray(actual_shares, dtype=np.float64)
    if expected.shape != actual.shape or expected.ndim != 1:
        raise ValueError(f"share vectors differ in shape: {expected.shape} vs {actual.shape}")
    expected = np.maximum(expected, epsilon)
    actual = np.maximum(actual, epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def noise_level(
    n_bins: int, reference_rows: int, current_rows: int, confidence: float = DEFAULT_CONFIDENCE
) -> float:
    """The PSI two samples of one distribution stay under with probability ``confidence``."""
    if n_bins < 2:
        return 0.0
    if reference_rows <= 0 or current_rows <= 0:
        return float("inf")
    return float(
        chi2_quantile(confidence, n_bins - 1) * (1.0 / reference_rows + 1.0 / current_rows)
    )


def shares(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Counts as proportions of their total (all zeros when there is nothing to count)."""
    array = np.asarray(counts, dtype=np.float64)
    total = array.sum()
    return array / total if total > 0 else np.zeros_like(array)


def current_shares(
    feature: NumericFeature | CategoricalFeature, values: Sequence[object] | np.ndarray
) -> tuple[np.ndarray, float]:
    """Shares of new ``values`` in the reference's bins, and their missing rate (kept apart)."""
    counts, missing = feature.count(values)
    total = int(counts.sum()) + missing
    return shares(counts), (missing / total if total else 0.0)


def smoothed_shares(
    counts: Sequence[float] | np.ndarray, smoothing: float = SMOOTHING
) -> np.ndarray:
    """Shares after adding `smoothing` rows to every bin."""
    array = np.asarray(counts, dtype=np.float64) + smoothing
    return array / array.sum()


def rate_floor(boundary: float) -> int:
    """Fewest rows from which a rate whose test stands at `boundary` is judged by the normal
    approximation: ROWS_PER_BIN expected on its rarer side."""
    rarer = min(boundary, 1 - boundary)
    return math.ceil(ROWS_PER_BIN / rarer) if rarer > 0 else 0


def _shown(count: int, rows: int, rise: float, level: float, boundary: float, alpha: float) -> bool:
    """Whether a window shows a rate above its test's `boundary`: the rise above the normal alert
    `level`, or on fewer rows than rate_floor the exact binomial tail at the boundary (the normal
    bound would call 5 of 5 rows missing drift for a feature 30 % missing: 0.24 % of windows)."""
    if rows <= 0:
        return False
    if rows >= rate_floor(boundary):
        return rise > level
    return binomial_upper_tail(count, rows, min(boundary, 1.0)) <= alpha


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
    if current_rows < floor_rows or current_rows == 0:
        return "insufficient data"
    if value > alert_level:
        return "drift"
    if minimum_rows is None or current_rows < minimum_rows:
        return "insufficient data"
    return "stable"


class FeatureReport(BaseModel):
    """How one feature (or model output) in the window compares with the reference."""

    name: str
    kind: Literal["numeric", "categorical"]
    verdict: Verdict
    psi: float | None = Field(description="None when no current rows were binned")
    psi_debiased: float | None = Field(
        default=None, description="PSI less its no-drift mean (B - 1)(1/n + 1/m), at least 0"
    )
    alert_level: float | None = Field(
        default=None,
        description="PSI above which this window shows PSI > threshold at the check's "
        "family-wise confidence",
    )
    p_value: float | None = Field(
        default=None, description="chance of this PSI if nothing changed, x the check's tests"
    )
    minimum_rows: int | None = Field(
        default=None,
        description="fewest current rows for a 'stable' verdict (drift is called on fewer when "
        "shown); None: no window would do",
    )
    noise_level: float | None = Field(description="no-drift 95 % level of PSI, for reading")
    threshold: float
    bins: list[str]
    reference_shares: list[float]
    current_shares: list[float]
    current_counts: list[int]
    reference_rows: int = Field(description="n: non-missing reference rows")
    current_rows: int = Field(description="m: non-missing current rows")
    current_missing: int
    reference_missing_rate: float
    current_missing_rate: float
    missing_verdict: Verdict = Field(
        default="insufficient data", description="verdict on a rise in the missing rate"
    )
    missing_alert_level: float | None = Field(
        default=None,
        description="rise of the missing rate above which it shows a rise > missing_threshold",
    )
    missing_p_value: float | None = Field(
        default=None, description="chance of this rise if nothing changed, x the check's tests"
    )
    missing_threshold: float = DEFAULT_MISSING_THRESHOLD
    reference_unseen_rate: float | None = Field(
        default=None,
        description="training share beyond the training range (0) or of no kept category; "
        "None: not tracked (a profile without the training range)",
    )
    current_unseen_rate: float | None = Field(
        default=None, description="share of current values beyond the range or of no category"
    )
    unseen_verdict: Verdict | None = Field(
        default=None, description="verdict on a rise of the unseen rate; None: not tracked"
    )
    unseen_alert_level: float | None = None
    unseen_p_value: float | None = None
    unseen_threshold: float = DEFAULT_UNSEEN_THRESHOLD

    @computed_field  # type: ignore[prop-decorator]
    @property
    def drifted(self) -> bool:
        """Its bins (PSI), its missing rate or its unseen rate drifted."""
        return "drift" in (self.verdict, self.missing_verdict, self.unseen_verdict)


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
    rate, rise = feature.missing_rate, current_rate - feature.missing_rate
    missing_level = rate_alert_level(rate, reference_total, total, missing_threshold, alpha)
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
        missing_verdict=verdict(
            1.0
            if _shown(missing, total, rise, missing_level, rate + missing_threshold, alpha)
            else 0,
            0.5,
            total,
            missing_needed,
            min_rows,
        ),
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
    boundary = reference + unseen_bound(feature.rows, alpha / 2) + threshold
    return {
        "reference_unseen_rate": reference,
        "current_unseen_rate": rate,
        "unseen_verdict": verdict(
            1.0 if _shown(unseen, present, rate, level, boundary, alpha / 2) else 0.0,
            0.5,
            present,
            needed,
            min_rows,
        ),
        "unseen_alert_level": level if present and feature.rows else None,
        "unseen_p_value": corrected(rate_p_value(reference, feature.rows, rate, present), family)
        if present and feature.rows
        else None,
        "unseen_threshold": threshold,
    }


_ORDER = {"drift": 0, "stable": 1, "insufficient data": 2}


def sort_reports(reports: Sequence[FeatureReport]) -> list[FeatureReport]:
    """Drifted features (bins or missing rate) first, then stable, then insufficient data;
    higher PSI first within each."""
    return sorted(
        reports,
        key=lambda r: (
            0 if r.drifted else _ORDER[r.verdict],
            -(r.psi if r.psi is not None else -1.0),
            r.name,
        ),
    )


class DriftReport(BaseModel):
    """Drift of one model (version) over a window of the prediction log."""

    model: str
    version: int | None = Field(description="None: every version of the model was read")
    window_start: datetime
    window_end: datetime
    days: int
    rows: int = Field(description="log rows of this model in the window")
    created_at: datetime
    threshold: float
    min_rows: int = Field(description="current rows below which no verdict is given")
    smoothing: float = Field(default=SMOOTHING, description="rows added to every bin for PSI")
    tests: int = Field(default=1, description="tests of this check (2 per feature and output)")
    family_alpha: float = Field(
        default=0.05, description="chance allowed that any test alerts when nothing drifted"
    )
    missing_threshold: float = DEFAULT_MISSING_THRESHOLD
    unseen_threshold: float = DEFAULT_UNSEEN_THRESHOLD
    files: list[str] = Field(description="log files read")
    corrupt_lines: int = Field(description="lines skipped: not JSON, truncated, or fields missing")
    mismatched_lines: int = Field(description="lines skipped: feature count ≠ profile's")
    duplicate_lines: int = Field(
        default=0, description="lines not counted again: a (job, row) logged by a second run"
    )
    features: list[FeatureReport] = Field(description="drifted first (see sort_reports)")
    outputs: list[FeatureReport] = Field(
        default_factory=list, description="predicted probability and label, when profiled"
    )
    class_names: dict[str, str] = Field(
        default_factory=dict, description="the label output's class names, by logged label"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def drifted(self) -> list[str]:
        """Features whose bins or missing rate drifted."""
        return [r.name for r in self.features if r.drifted]

    def feature(self, name: str) -> FeatureReport:
        for report in [*self.features, *self.outputs]:
            if report.name == name:
                return report
        raise KeyError(name)
