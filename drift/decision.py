"""When a difference between the window and the reference is called drift.

A model's check makes many tests: for every feature its bins (PSI) and its missing rate, for every
model output its bins. Two things must hold whatever the window's size and the model's width:

- with no drift, the chance that *any* test of the check alerts is at most `family_alpha` (5 %);
- a shift larger than the threshold is found more often, never less, as the window grows.

So every test asks the same question: do the data show, at confidence `1 - family_alpha / tests`
(Bonferroni over the check's tests), that the effect is **larger than its threshold**? A
minimum-effect test (the null hypothesis is "the effect is at most the threshold", not "there is no
difference"): a tiny but real difference in a huge window is not drift, and noise in a small window
is not either.

Bins. With ``n`` reference and ``m`` current rows in ``B`` bins, ``X = PSI / (1/n + 1/m)`` is about
chi-square with ``k = B - 1`` degrees of freedom when nothing changed, and noncentral chi-square
with noncentrality ``PSI_true / (1/n + 1/m)`` when the population's PSI is ``PSI_true`` (Yurdakul
2018; PSI is the symmetric Kullback-Leibler divergence, to second order Pearson's chi-square). The
**alert level** is the PSI that ``X`` exceeds with chance ``alpha`` when ``PSI_true`` equals the
threshold; PSI above it is drift. It is always above the threshold, falls as the window grows, and
stays above ``threshold + k/n``: a reference of few rows cannot vouch for small effects.

Rates (the missing rate): the rise ``c - r`` over the reference rate is drift when it exceeds the
threshold by more than ``z(1 - alpha)`` standard errors, the standard error taken at the boundary
``c = r + threshold``.

The unseen rate (values beyond the training range, or of no training category) starts from a
bound, not a rate: with nothing changed, the share of a population beyond the minimum and maximum
of ``n`` training draws is itself random (order statistics: the two tails together are
Gamma(2, 1/n) for any continuous feature, ``P(share > x/n) = e^-x (1 + x)``), and a small reference
leaves a wide one (569 rows: up to 1.7 % at the demo model's level). The alert level is that
bound, plus the threshold, plus ``z`` standard errors of the window's rate.

Beside each verdict the report gives the effect and the evidence: PSI, PSI less its no-drift mean
``k (1/n + 1/m)`` (debiased), and the p-value of "nothing changed" multiplied by the number of
tests (capped at 1).

A window is too small to judge (**insufficient data**) when even a PSI of twice the threshold
would be missed more often than found at this level: the minimum window follows from the
reference's rows, its bins and the number of tests. With a reference too small for that at any
window, every verdict on the feature is insufficient data: profile more rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from drift.chi2 import chi2_upper_tail, noncentral_chi2_quantile

DEFAULT_FAMILY_ALPHA = 0.05
# The effect, as a multiple of the threshold, that a window must find at least half the time
# before its verdicts count (see minimum_window).
DETECTABLE_MULTIPLE = 2.0
LARGEST_WINDOW = 10**9


@dataclass(frozen=True)
class Family:
    """The tests of one check, and the chance allowed that any of them alerts with no drift."""

    tests: int
    alpha: float = DEFAULT_FAMILY_ALPHA

    def __post_init__(self) -> None:
        if self.tests < 1 or not 0 < self.alpha < 1:
            raise ValueError(f"need tests >= 1 and 0 < alpha < 1, got {self.tests}, {self.alpha}")

    @property
    def per_test(self) -> float:
        """Each test's own level (Bonferroni)."""
        return self.alpha / self.tests


def _scale(reference_rows: int, current_rows: int) -> float:
    return 1.0 / reference_rows + 1.0 / current_rows


@lru_cache(maxsize=65536)
def psi_alert_level(
    n_bins: int, reference_rows: int, current_rows: int, threshold: float, alpha: float
) -> float:
    """The PSI above which a window shows, at confidence 1 - alpha, that PSI exceeds the
    threshold."""
    if n_bins < 2:
        return math.inf  # one bin: every row is in it, nothing to compare
    if reference_rows <= 0 or current_rows <= 0:
        return math.inf
    scale = _scale(reference_rows, current_rows)
    return noncentral_chi2_quantile(1 - alpha, n_bins - 1, threshold / scale) * scale


def psi_p_value(psi: float, n_bins: int, reference_rows: int, current_rows: int) -> float:
    """The chance of a PSI at least this large if nothing changed (one test, uncorrected)."""
    if n_bins < 2 or reference_rows <= 0 or current_rows <= 0:
        return 1.0
    return chi2_upper_tail(psi / _scale(reference_rows, current_rows), n_bins - 1)


def debiased_psi(psi: float, n_bins: int, reference_rows: int, current_rows: int) -> float:
    """PSI less its mean when nothing changed, k (1/n + 1/m); at least 0."""
    if n_bins < 2 or reference_rows <= 0 or current_rows <= 0:
        return psi
    return max(0.0, psi - (n_bins - 1) * _scale(reference_rows, current_rows))


def _finds_twice_the_threshold(
    n_bins: int, reference_rows: int, current_rows: int, threshold: float, alpha: float
) -> bool:
    """A window of `current_rows` finds a PSI of DETECTABLE_MULTIPLE x threshold at least half
    the time: the median of its statistic is above the alert level's."""
    scale = _scale(reference_rows, current_rows)
    k = n_bins - 1
    typical = noncentral_chi2_quantile(0.5, k, DETECTABLE_MULTIPLE * threshold / scale)
    return typical > noncentral_chi2_quantile(1 - alpha, k, threshold / scale)


def _fewest_rows(finds: Callable[[int], bool]) -> int | None:
    """The fewest current rows for which `finds` (which only turns true as rows grow) holds;
    None when not even LARGEST_WINDOW does."""
    if not finds(LARGEST_WINDOW):
        return None
    if finds(1):
        return 1
    low, high = 1, LARGEST_WINDOW  # low fails, high finds
    while high - low > 1:
        middle = (low + high) // 2
        if finds(middle):
            high = middle
        else:
            low = middle
    return high


@lru_cache(maxsize=4096)
def minimum_window(n_bins: int, reference_rows: int, threshold: float, alpha: float) -> int | None:
    """The fewest current rows whose bins' verdict counts; None when no window is enough (the
    reference has too few rows for this threshold and level)."""
    if n_bins < 2 or reference_rows <= 0:
        return None
    return _fewest_rows(
        lambda rows: _finds_twice_the_threshold(n_bins, reference_rows, rows, threshold, alpha)
    )


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1 - alpha)


def _rate_error(reference_rate: float, reference_total: int, rate: float, total: int) -> float:
    """Standard error of a difference of two rates; the reference's rate is smoothed by half a
    row each way, so that a reference with no missing value is not taken as certain."""
    smoothed = (reference_rate * reference_total + 0.5) / (reference_total + 1)
    rate = min(max(rate, 0.0), 1.0)
    return math.sqrt(smoothed * (1 - smoothed) / reference_total + rate * (1 - rate) / total)


def rate_alert_level(
    reference_rate: float, reference_total: int, current_total: int, threshold: float, alpha: float
) -> float:
    """The rise of a rate (over the reference's) above which a window shows, at confidence
    1 - alpha, that the rise exceeds the threshold."""
    if reference_total <= 0 or current_total <= 0:
        return math.inf
    boundary = reference_rate + threshold
    error = _rate_error(reference_rate, reference_total, boundary, current_total)
    return threshold + _z(alpha) * error


@lru_cache(maxsize=4096)
def rate_minimum_window(
    reference_rate: float, reference_total: int, threshold: float, alpha: float
) -> int | None:
    """The fewest current rows whose rate verdict counts: a rise of twice the threshold is found
    at least half the time. None when no window is enough."""
    if reference_total <= 0 or reference_rate + DETECTABLE_MULTIPLE * threshold > 1:
        return None

    def finds(total: int) -> bool:
        # the rise it would see half the time, against the rise it needs
        level = rate_alert_level(reference_rate, reference_total, total, threshold, alpha)
        return level < DETECTABLE_MULTIPLE * threshold

    return _fewest_rows(finds)


def rate_p_value(
    reference_rate: float, reference_total: int, rate: float, current_total: int
) -> float:
    """One-sided chance of a rise at least this large if nothing changed (pooled two-proportion
    z-test, uncorrected)."""
    if reference_total <= 0 or current_total <= 0:
        return 1.0
    missing = reference_rate * reference_total + rate * current_total
    pooled = missing / (reference_total + current_total)
    spread = math.sqrt(pooled * (1 - pooled) * _scale(reference_total, current_total))
    if spread == 0:
        return 1.0
    return 1 - NormalDist().cdf((rate - reference_rate) / spread)


def corrected(p_value: float, family: Family) -> float:
    """A test's p-value times the number of tests (Bonferroni), capped at 1."""
    return min(1.0, p_value * family.tests)


def unseen_bound(reference_rows: int, alpha: float) -> float:
    """The share of a population beyond the range of `reference_rows` draws from it that is
    exceeded with chance `alpha` when nothing changed: x/n with e^-x (1 + x) = alpha."""
    if reference_rows <= 0:
        return 1.0
    low, high = 0.0, 1.0
    while math.exp(-high) * (1 + high) > alpha:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        if math.exp(-middle) * (1 + middle) > alpha:
            low = middle
        else:
            high = middle
    return min(1.0, high / reference_rows)


def _unseen_start(reference_share: float, reference_rows: int, alpha: float) -> float:
    """What the reference vouches for as unseen: its own share plus unseen_bound, at half the
    test's alpha (the other half is the window's)."""
    return reference_share + unseen_bound(reference_rows, alpha / 2)


def unseen_alert_level(
    reference_share: float, reference_rows: int, current_rows: int, threshold: float, alpha: float
) -> float:
    """The unseen rate above which a window shows, at confidence 1 - alpha, a rise of more than
    the threshold over what the reference vouches for (`reference_share`, e.g. categories it did
    not keep, plus unseen_bound); alpha is split between the bound and the window."""
    if reference_rows <= 0 or current_rows <= 0:
        return math.inf
    start = _unseen_start(reference_share, reference_rows, alpha)
    boundary = min(1.0, start + threshold)
    error = math.sqrt(boundary * (1 - boundary) / current_rows)
    return start + threshold + _z(alpha / 2) * error


@lru_cache(maxsize=4096)
def unseen_minimum_window(
    reference_share: float, reference_rows: int, threshold: float, alpha: float
) -> int | None:
    """The fewest current rows whose unseen verdict counts: a rise of twice the threshold over
    the reference's bound is found at least half the time."""
    if reference_rows <= 0:
        return None
    start = _unseen_start(reference_share, reference_rows, alpha)
    if start + DETECTABLE_MULTIPLE * threshold > 1:
        return None
    boundary = start + threshold
    # z * sqrt(b (1 - b) / M) < threshold
    rows = _z(alpha / 2) ** 2 * boundary * (1 - boundary) / threshold**2
    return max(1, math.ceil(rows))


def binomial_upper_tail(count: int, rows: int, rate: float) -> float:
    """P(Binomial(rows, rate) >= count), summed exactly (for the small windows where the normal
    approximation fails)."""
    if count <= 0:
        return 1.0
    if count > rows or rate <= 0:
        return 0.0
    if rate >= 1:
        return 1.0
    log_rate, log_other = math.log(rate), math.log1p(-rate)
    total = 0.0
    for k in range(count, rows + 1):
        log_term = (
            math.lgamma(rows + 1)
            - math.lgamma(k + 1)
            - math.lgamma(rows - k + 1)
            + k * log_rate
            + (rows - k) * log_other
        )
        total += math.exp(log_term)
    return min(1.0, total)


# A rate's test leans on the normal approximation of the binomial from this many rows expected
# on the rarer side of its boundary on; on fewer rows it takes the exact binomial tail instead.
EXPECTED_ROWS = 5


def _shown(count: int, rows: int, rise: float, level: float, boundary: float, alpha: float) -> bool:
    """Whether a window shows a rate above its test's `boundary`: the rise above the normal
    alert `level`, or on small windows the exact binomial tail at the boundary (the normal bound
    called 2 of 5 values beyond a 569-row range drift)."""
    if rows <= 0:
        return False
    rarer = min(boundary, 1 - boundary)
    if rarer <= 0 or rows >= math.ceil(EXPECTED_ROWS / rarer):
        return rise > level
    return binomial_upper_tail(count, rows, min(boundary, 1.0)) <= alpha


def rate_shown(
    count: int,
    rows: int,
    reference_rate: float,
    reference_total: int,
    threshold: float,
    alpha: float,
) -> bool:
    """`count` of `rows` (e.g. missing values) show a rise over `reference_rate` of more than
    `threshold` at confidence 1 - alpha."""
    level = rate_alert_level(reference_rate, reference_total, rows, threshold, alpha)
    rise = (count / rows if rows else 0.0) - reference_rate
    return _shown(count, rows, rise, level, reference_rate + threshold, alpha)


def unseen_shown(
    count: int,
    rows: int,
    reference_share: float,
    reference_rows: int,
    threshold: float,
    alpha: float,
) -> bool:
    """`count` of `rows` values unseen in training show a rise of more than `threshold` over
    what the reference vouches for, at confidence 1 - alpha (split with the bound)."""
    level = unseen_alert_level(reference_share, reference_rows, rows, threshold, alpha)
    boundary = _unseen_start(reference_share, reference_rows, alpha) + threshold
    rate = count / rows if rows else 0.0
    return _shown(count, rows, rate, level, boundary, alpha / 2)
