"""PSI by hand, the epsilon floor and the additive smoothing, the chi-square noise level, and
what compare makes of them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drift import EPSILON, Family, compare, noise_level, psi, sort_reports, verdict
from drift.decision import minimum_window, psi_alert_level
from drift.feature_bins import CategoricalFeature, NumericFeature
from drift.psi import smoothed_shares


def test_psi_of_a_hand_vector_is_the_sum_of_the_terms_computed_by_hand() -> None:
    expected = [0.25, 0.25, 0.25, 0.25]
    actual = [0.1, 0.2, 0.3, 0.4]
    # (0.1 - 0.25) * ln(0.1 / 0.25) = -0.15 * ln(0.4) = -0.15 * -0.916291 = 0.137444
    # (0.2 - 0.25) * ln(0.2 / 0.25) = -0.05 * ln(0.8) = -0.05 * -0.223144 = 0.011157
    # (0.3 - 0.25) * ln(0.3 / 0.25) =  0.05 * ln(1.2) =  0.05 *  0.182322 = 0.009116
    # (0.4 - 0.25) * ln(0.4 / 0.25) =  0.15 * ln(1.6) =  0.15 *  0.470004 = 0.070501
    # sum                                                                  = 0.228217
    assert psi(expected, actual) == pytest.approx(0.228217, abs=1e-6)


def test_psi_is_symmetric_in_its_two_share_vectors() -> None:
    # Each term (a - e) * ln(a / e) is unchanged when a and e swap: both factors change sign.
    assert psi([0.25] * 4, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(
        psi([0.1, 0.2, 0.3, 0.4], [0.25] * 4)
    )


def test_psi_of_identical_shares_is_zero() -> None:
    assert psi([0.1, 0.2, 0.7], [0.1, 0.2, 0.7]) == 0.0


def test_an_empty_reference_bin_is_floored_at_epsilon_without_renormalising() -> None:
    expected = [0.5, 0.5, 0.0]
    actual = [0.5, 0.4, 0.1]
    # the empty bin becomes EPSILON = 1e-4; the other shares are left as they are
    # (0.5 - 0.5)    * ln(0.5 / 0.5)    = 0
    # (0.4 - 0.5)    * ln(0.4 / 0.5)    = -0.1   * -0.223144 = 0.022314
    # (0.1 - 0.0001) * ln(0.1 / 0.0001) =  0.0999 *  6.907755 = 0.690085
    # sum                                                      = 0.712399
    assert EPSILON == 1e-4
    assert psi(expected, actual) == pytest.approx(0.712399, abs=1e-6)


def test_an_empty_current_bin_is_floored_too_so_psi_stays_finite() -> None:
    # (0.0001 - 0.5) * ln(0.0001 / 0.5) = -0.4999 * -8.517193 = 4.257745
    # (1.0 - 0.5)    * ln(1.0 / 0.5)    =  0.5    *  0.693147 = 0.346574
    value = psi([0.5, 0.5], [0.0, 1.0])
    assert math.isfinite(value)
    assert value == pytest.approx(4.257745 + 0.346574, abs=1e-5)


def test_share_vectors_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        psi([0.5, 0.5], [1.0])


def test_noise_level_is_chi2_95th_percentile_for_b_minus_1_times_one_over_n_plus_m() -> None:
    n, m = 569, 1000
    # chi-square 95th percentile, 9 degrees of freedom (tables) = 16.918978
    # (1/569 + 1/1000) = 0.0027575 ; product = 0.046654
    assert noise_level(10, n, m) == pytest.approx(16.918978 * (1 / n + 1 / m), rel=1e-7)
    assert noise_level(10, n, m) == pytest.approx(0.046654, abs=1e-6)


def test_noise_level_shrinks_as_both_samples_grow() -> None:
    assert noise_level(10, 10_000, 10_000) < noise_level(10, 1_000, 1_000)


ONE_TEST = Family(tests=2)


def test_drift_is_called_above_the_alert_level_and_stable_only_from_the_minimum_window() -> None:
    assert verdict(0.5, alert_level=0.3, current_rows=1000, minimum_rows=200) == "drift"
    assert verdict(0.25, alert_level=0.3, current_rows=1000, minimum_rows=200) == "stable"
    # shown, so drift, on fewer rows than could vouch for "stable"
    assert verdict(5.0, alert_level=0.3, current_rows=150, minimum_rows=200) == "drift"
    assert verdict(0.1, alert_level=0.3, current_rows=150, minimum_rows=200) == (
        "insufficient data"
    )
    assert verdict(0.1, alert_level=0.3, current_rows=10**6, minimum_rows=None) == (
        "insufficient data"  # a reference too small to vouch for any window
    )
    assert verdict(5.0, alert_level=0.3, current_rows=49, minimum_rows=200, floor_rows=50) == (
        "insufficient data"  # under the chi-square approximation's floor
    )


def test_report_shares_are_smoothed_by_half_a_row_in_every_bin() -> None:
    # counts 0, 10, 30 + 0.5 each = 0.5, 10.5, 30.5 of 41.5
    assert smoothed_shares([0, 10, 30]).tolist() == pytest.approx(
        [0.5 / 41.5, 10.5 / 41.5, 30.5 / 41.5]
    )


def test_compare_bins_counts_into_a_feature_report_with_shares_and_missing_rate() -> None:
    feature = NumericFeature(name="x", cuts=[0.0], shares=[0.5, 0.5], rows=1000, missing_rate=0.0)
    report = compare(feature, np.array([50, 350]), missing=100, family=ONE_TEST)
    # smoothed: reference 500.5 / 1001 each; current 50.5 / 401 and 350.5 / 401
    e, a = [0.5, 0.5], [50.5 / 401, 350.5 / 401]
    by_hand = sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True))
    assert report.current_shares == [0.125, 0.875]
    assert report.psi == pytest.approx(by_hand, rel=1e-9)
    # chi-square 95th percentile, 1 degree of freedom (tables) = 3.841459
    assert report.noise_level == pytest.approx(3.841459 * (1 / 1000 + 1 / 400), rel=1e-6)
    assert report.alert_level == pytest.approx(psi_alert_level(2, 1000, 400, 0.2, 0.025))
    assert report.minimum_rows == minimum_window(2, 1000, 0.2, 0.025)
    assert report.verdict == "drift" and report.psi > report.alert_level > 0.2
    assert report.current_rows == 400
    assert report.current_missing_rate == pytest.approx(0.2)
    assert report.bins == ["[-inf, 0)", "[0, inf)"]


def test_compare_with_no_current_rows_gives_no_psi_and_insufficient_data() -> None:
    feature = CategoricalFeature(
        name="c", categories=["a"], shares=[1.0, 0.0], rows=10, missing_rate=0.0
    )
    report = compare(feature, [0, 0], family=ONE_TEST)
    assert report.psi is None
    assert report.verdict == "insufficient data"


def test_sorted_reports_put_drifted_features_first_by_descending_psi() -> None:
    feature = NumericFeature(name="x", cuts=[0.0], shares=[0.5, 0.5], rows=1000, missing_rate=0.0)
    stable = compare(feature, [500, 500], family=ONE_TEST).model_copy(update={"name": "stable"})
    small = compare(feature, [5, 5], family=ONE_TEST).model_copy(update={"name": "small"})
    drift = compare(feature, [100, 900], family=ONE_TEST).model_copy(update={"name": "drift"})
    more = compare(feature, [10, 990], family=ONE_TEST).model_copy(update={"name": "more"})
    ordered = sort_reports([stable, small, drift, more])
    assert [r.name for r in ordered] == ["more", "drift", "stable", "small"]
