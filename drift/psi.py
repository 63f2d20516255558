"""Population Stability Index, its noise level, and the per-feature and whole-model reports.

PSI compares the share of rows in each bin of the reference (training) data, ``e``, with the share
in the current (logged) data, ``a``::

    PSI = Σ (aᵢ - eᵢ) · ln(aᵢ / eᵢ)

Every term is ≥ 0. A bin that is empty on one side would make a term infinite, so shares are
floored at ``EPSILON`` (1e-4) first, **without renormalising**: the floor adds at most
``bins x 1e-4`` of mass, which changes no verdict, and keeps hand-computed examples exact for
non-empty bins. The floor caps the term of one empty bin holding share ``a`` at
``(a - 1e-4) · ln(a / 1e-4)``, e.g. ≈ 0.046 for 1 % of current rows.

PSI of two samples of the *same* distribution is not 0: with ``n`` reference and ``m`` current rows
in ``B`` bins, ``PSI`` is approximately ``(1/n + 1/m) · χ²(B - 1)`` (Yurdakul 2018, "Statistical
properties of population stability index"). The noise level at 95 % is therefore
``chi2_quantile(0.95, B - 1) · (1/n + 1/m)``, and a feature is only called "drift" when its PSI
exceeds both the threshold (0.2 by default) and that noise level (drift/chi2.py computes the
quantile). ``n`` and ``m`` are the non-missing rows the shares were computed on; ``B`` counts every
bin compared, the unseen bucket of a categorical feature included.

The missing rate (None / NaN values) is tracked apart from the bins, so PSI never sees it. It has
its own rule: a feature's missing rate has drifted when it *rose* by more than
``missing_threshold`` (0.1, i.e. 10 percentage points, by default) **and** by more than its own
95 % noise level, the one-sided two-proportion bound ``z₀.₉₅ · √(p̄(1 - p̄)(1/N + 1/M))`` (``p̄``
the pooled missing rate, ``N`` and ``M`` all reference and current rows, missing ones included).
Fewer than ``min_rows`` current rows is "insufficient data". A fall in the missing rate is reported
but never flagged. A feature counts as drifted (``FeatureReport.drifted``) when either its bins or
its missing rate drifted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from statistics import NormalDist
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field, computed_field

from drift.chi2 import chi2_quantile

if TYPE_CHECKING:
    from drift.profile import CategoricalFeature, NumericFeature

EPSILON = 1e-4
DEFAULT_THRESHOLD = 0.2
DEFAULT_MIN_ROWS = 100
DEFAULT_CONFIDENCE = 0.95
DEFAULT_MISSING_THRESHOLD = 0.1

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


def verdict(
    psi_value: float,
    noise: float,
    current_rows: int,
    reference_rows: int,
    threshold: float = DEFAULT_THRESHOLD,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> Verdict:
    """'insufficient data' under ``min_rows``; 'drift' when PSI > threshold and > noise level."""
    if current_rows < min_rows or reference_rows <= 0:
        return "insufficient data"
    if psi_value > threshold and psi_value > noise:
        return "drift"
    return "stable"


def missing_noise_level(
    reference_missing: float,
    reference_total: int,
    current_missing: int,
    current_total: int,
    confidence: float = DEFAULT_CONFIDENCE,
) -> float:
    """The rise in missing rate two samples of one distribution stay under with ``confidence``."""
    if reference_total <= 0 or current_total <= 0:
        return float("inf")
    pooled = (reference_missing + current_missing) / (reference_total + current_total)
    spread = pooled * (1.0 - pooled) * (1.0 / reference_total + 1.0 / current_total)
    return float(NormalDist().inv_cdf(confidence) * spread**0.5)


def missing_verdict(
    reference_rate: float,
    current_rate: float,
    noise: float,
    current_total: int,
    threshold: float = DEFAULT_MISSING_THRESHOLD,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> Verdict:
    """'drift' when the missing rate rose by more than ``threshold`` and more than ``noise``."""
    if current_total < min_rows:
        return "insufficient data"
    rise = current_rate - reference_rate
    if rise > threshold and rise > noise:
        return "drift"
    return "stable"


class FeatureReport(BaseModel):
    """How one feature (or model output) in the window compares with the reference."""

    name: str
    kind: Literal["numeric", "categorical"]
    verdict: Verdict
    psi: float | None = Field(description="None when no current rows were binned")
    noise_level: float | None
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
    missing_noise_level: float | None = Field(
        default=None, description="no-drift 95 % bound on the rise of the missing rate"
    )
    missing_threshold: float = DEFAULT_MISSING_THRESHOLD

    @computed_field  # type: ignore[prop-decorator]
    @property
    def drifted(self) -> bool:
        """Its bins (PSI) or its missing rate drifted."""
        return self.verdict == "drift" or self.missing_verdict == "drift"


def compare(
    feature: NumericFeature | CategoricalFeature,
    counts: Sequence[int] | np.ndarray,
    missing: int = 0,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_rows: int = DEFAULT_MIN_ROWS,
    epsilon: float = EPSILON,
    confidence: float = DEFAULT_CONFIDENCE,
    missing_threshold: float = DEFAULT_MISSING_THRESHOLD,
    reference_total: int | None = None,
) -> FeatureReport:
    """Report on one feature from its current bin ``counts`` and ``missing`` count.

    ``reference_total`` is the number of training rows, missing ones included (the profile's
    ``rows``); by default it is derived from the feature's non-missing rows and missing rate.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape != (feature.n_bins,):
        raise ValueError(f"{feature.name}: {counts.size} counts for {feature.n_bins} bins")
    m = int(counts.sum())
    current = shares(counts)
    value = psi(feature.shares, current, epsilon) if m else None
    noise = noise_level(feature.n_bins, feature.rows, m, confidence) if m else None
    total = m + missing
    if reference_total is None:
        kept = 1.0 - feature.missing_rate
        reference_total = round(feature.rows / kept) if kept > 0 else 0
    current_rate = missing / total if total else 0.0
    missing_noise = missing_noise_level(
        feature.missing_rate * reference_total, reference_total, missing, total, confidence
    )
    return FeatureReport(
        name=feature.name,
        kind=feature.kind,
        verdict=verdict(
            value if value is not None else 0.0,
            noise if noise is not None else float("inf"),
            m,
            feature.rows,
            threshold,
            min_rows,
        ),
        psi=value,
        noise_level=noise,
        threshold=threshold,
        bins=feature.bin_labels,
        reference_shares=list(feature.shares),
        current_shares=current.tolist(),
        current_counts=counts.tolist(),
        reference_rows=feature.rows,
        current_rows=m,
        current_missing=int(missing),
        reference_missing_rate=feature.missing_rate,
        current_missing_rate=current_rate,
        missing_verdict=missing_verdict(
            feature.missing_rate,
            current_rate,
            missing_noise,
            total,
            missing_threshold,
            min_rows,
        ),
        missing_noise_level=missing_noise if total and reference_total else None,
        missing_threshold=missing_threshold,
    )


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
    min_rows: int
    epsilon: float
    missing_threshold: float = DEFAULT_MISSING_THRESHOLD
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
