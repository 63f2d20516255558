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
rise over the reference's rate has its own alert level, as has the unseen rate. A feature counts as
drifted (``FeatureReport.drifted``) when any of them drifted. drift/verdicts.py turns a feature's
current counts into its FeatureReport.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field, computed_field

from drift.chi2 import chi2_quantile

if TYPE_CHECKING:
    from drift.feature_bins import CategoricalFeature, NumericFeature

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
        default_factory=list,
        description="the profiled outputs: predicted probability and label, a regressor's "
        "predictions, a tensor model's output values",
    )
    skipped: dict[str, str] = Field(
        default_factory=dict, description="inputs and outputs not profiled, each with why"
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
