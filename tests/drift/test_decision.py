"""The decision rule (drift/decision.py): the chi-square pieces against scipy, the alert level's
shape, and, by simulation with the library's own functions, the two promises: with no drift a
check alerts at most 5 % of the time at every window size, and a real shift is found more often
as the window grows."""

from __future__ import annotations

import itertools

import pytest
from scipy import stats

from bench.drift_calibration import Model, alert_rate, beyond_the_maximum, moved, standard
from drift.chi2 import chi2_quantile, chi2_upper_tail, noncentral_chi2_quantile
from drift.decision import (
    debiased_psi,
    minimum_window,
    psi_alert_level,
    rate_minimum_window,
    unseen_alert_level,
    unseen_bound,
)

DEMO_ROWS = 569  # the demo model's training rows


@pytest.mark.parametrize("df", [1, 2, 9, 49])
@pytest.mark.parametrize("x", [0.5, 5.0, 30.0, 120.0])
def test_the_upper_tail_matches_scipy_far_into_the_tail(df: int, x: float) -> None:
    assert chi2_upper_tail(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-12)


def test_quantiles_take_fractional_degrees_of_freedom() -> None:
    assert chi2_quantile(0.99, 7.3) == pytest.approx(stats.chi2.ppf(0.99, 7.3), rel=1e-9)


@pytest.mark.parametrize(
    ("df", "nc", "p"),
    [(9, 17, 1 - 0.05 / 62), (9, 114, 1 - 0.05 / 62), (1, 5, 0.99), (49, 300, 1 - 1e-5)],
)
def test_patnaiks_noncentral_quantile_is_within_5_percent_above_the_exact_one(
    df: int, nc: float, p: float
) -> None:
    """Above: the alert level errs towards fewer alerts, never more."""
    exact = stats.ncx2.ppf(p, df, nc)
    assert exact <= noncentral_chi2_quantile(p, df, nc) <= exact * 1.05


def test_the_alert_level_lies_above_the_threshold_and_falls_as_the_window_grows() -> None:
    levels = [psi_alert_level(10, DEMO_ROWS, m, 0.2, 0.05 / 62) for m in (50, 100, 1000, 10**6)]
    assert all(a > b for a, b in itertools.pairwise(levels))
    # never under threshold + (B - 1)/n: a reference of 569 rows cannot vouch for less
    assert levels[-1] > 0.2 + 9 / DEMO_ROWS


def test_the_minimum_window_grows_with_the_tests_and_shrinks_with_the_reference() -> None:
    few, many = minimum_window(10, 1000, 0.2, 0.05 / 2), minimum_window(10, 1000, 0.2, 0.05 / 200)
    large = minimum_window(10, 100_000, 0.2, 0.05 / 200)
    assert few is not None and many is not None and large is not None
    assert few < many and large < many
    assert minimum_window(10, 60, 0.2, 0.05 / 200) is None  # 60 training rows vouch for nothing
    assert rate_minimum_window(0.0, 60, 0.1, 0.05 / 200) is not None


def test_debiased_psi_takes_off_the_no_drift_mean() -> None:
    assert debiased_psi(0.3, 10, 569, 100) == pytest.approx(0.3 - 9 * (1 / 569 + 1 / 100))
    assert debiased_psi(0.01, 10, 569, 100) == 0.0


@pytest.mark.parametrize("window", [100, 150, 500])
def test_with_no_drift_a_30_feature_check_alerts_at_most_5_percent_of_the_time(
    window: int,
) -> None:
    """The defect: 84.5 % of 100-row checks of the demo model alerted with nothing changed."""
    [rate] = alert_rate(Model(30), (window,), standard, 100, DEMO_ROWS, seed=window)
    assert rate <= 0.05


@pytest.mark.parametrize(
    "shift",
    [(0.75, 1.0), (0.0, 2.0)],  # PSI over deciles 0.53 and 0.49
)
def test_a_shift_past_the_threshold_is_found_more_often_as_the_window_grows(
    shift: tuple[float, float],
) -> None:
    """The defect: a scale x1.5 was caught 87 % of the time at 100 rows, 12 % at 50,000."""
    windows = (100, 1000, 50_000)
    rates = alert_rate(Model(1), windows, moved(*shift), 60, DEMO_ROWS, seed=7)
    assert rates[0] <= rates[1] <= rates[2]
    assert rates[2] >= 0.9


def test_values_beyond_the_training_range_are_found_by_their_own_rate() -> None:
    """The defect: 5 % of values beyond the training maximum moved PSI by 0.02, never flagged."""
    windows = (100, 1000, 50_000)
    rates = alert_rate(Model(1), windows, beyond_the_maximum(0.05), 60, DEMO_ROWS, seed=9)
    assert rates[0] <= rates[1] <= rates[2]
    assert rates[2] >= 0.9


def test_the_unseen_rate_starts_from_what_the_references_own_range_vouches_for() -> None:
    # 569 rows: beyond their range lies up to ~1.9 % of the population at alpha 0.05 / 192
    assert unseen_bound(569, 0.05 / 192) == pytest.approx(0.0188, abs=0.0005)
    assert unseen_bound(100_000, 0.05 / 192) < 0.0002
    levels = [unseen_alert_level(0.0, 569, m, 0.01, 0.05 / 96) for m in (100, 1000, 50_000)]
    assert levels[0] > levels[1] > levels[2] > 0.01 + unseen_bound(569, 0.05 / 192)
