"""The missing-rate rule: a rise shown above the 10-point threshold at the check's family-wise
confidence is drift; a fall never is."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from drift import Family, build_profile, compare
from drift.decision import rate_alert_level, rate_minimum_window
from drift.feature_bins import NumericFeature

ONE_TEST = Family(tests=2)  # one feature: its bins and its missing rate


def feature(missing_rate: float = 0.0, rows: int = 1000) -> NumericFeature:
    return NumericFeature(
        name="x", cuts=[0.0], shares=[0.5, 0.5], rows=rows, missing_rate=missing_rate
    )


def test_the_alert_level_is_the_threshold_plus_z_standard_errors_at_the_boundary() -> None:
    # reference 5 % of 1,000 rows (smoothed: 50.5 / 1001), boundary 15 %, 1,000 current rows
    smoothed = 50.5 / 1001
    error = math.sqrt(smoothed * (1 - smoothed) / 1000 + 0.15 * 0.85 / 1000)
    z = 2.2414027  # one-sided, alpha 0.0125
    assert rate_alert_level(0.05, 1000, 1000, 0.1, 0.0125) == pytest.approx(
        0.1 + z * error, rel=1e-6
    )


def test_a_rise_shown_above_the_threshold_is_drift_and_a_fall_never_is() -> None:
    assert compare(feature(), [350, 350], missing=300, family=ONE_TEST).missing_verdict == "drift"
    # 11 points of 1,000 rows: above the threshold, but not shown above it at this confidence
    # (alert level 0.1 + 1.96 x 0.0095 = 0.119)
    assert compare(feature(), [445, 445], missing=110, family=ONE_TEST).missing_verdict == (
        "stable"
    )
    fall = compare(feature(missing_rate=0.5), [500, 500], missing=0, family=ONE_TEST)
    assert fall.missing_verdict == "stable"


def test_compare_reports_the_missing_rate_verdict_apart_from_the_bins() -> None:
    # 300 missing of 1000 current rows; the 700 present ones split like the reference
    report = compare(feature(), [350, 350], missing=300, family=ONE_TEST)
    assert report.verdict == "stable" and report.psi == pytest.approx(0.0)
    assert report.current_missing_rate == pytest.approx(0.3)
    assert report.missing_verdict == "drift" and report.drifted
    assert 0.1 < report.missing_alert_level < 0.2
    assert report.missing_p_value is not None and report.missing_p_value < 1e-6


def test_the_reference_total_counts_the_missing_training_rows_too() -> None:
    # 800 non-missing training rows at a 20 % missing rate: 1000 training rows in all
    derived = compare(feature(missing_rate=0.2, rows=800), [400, 400], missing=200, family=ONE_TEST)
    given = compare(
        feature(missing_rate=0.2, rows=800),
        [400, 400],
        missing=200,
        reference_total=1000,
        family=ONE_TEST,
    )
    assert derived.missing_alert_level == pytest.approx(given.missing_alert_level)
    assert given.missing_verdict == "stable"  # 20 % before, 20 % now


def test_a_feature_missing_entirely_in_training_has_no_rate_to_rise_from() -> None:
    report = compare(feature(missing_rate=1.0, rows=0), [0, 0], missing=500, family=ONE_TEST)
    assert report.missing_verdict == "insufficient data"
    assert not math.isnan(report.current_missing_rate)


def test_the_minimum_window_grows_with_the_number_of_tests() -> None:
    few = rate_minimum_window(0.0, 569, 0.1, 0.05 / 2)
    many = rate_minimum_window(0.0, 569, 0.1, 0.05 / 200)
    assert few is not None and many is not None and few < many


def test_thirty_percent_missing_everywhere_raises_no_alert_at_100_rows() -> None:
    """The defect: 51 % of 100-row checks of a 30-feature model alerted with nothing changed."""
    rng = np.random.default_rng(14)
    family = Family(tests=60)
    reference = feature(missing_rate=0.3, rows=398)  # 569 training rows, 30 % missing
    alerts = 0
    for _ in range(200):
        missing = rng.binomial(100, 0.3, size=30)
        alerts += any(
            compare(
                reference,
                [(100 - k) // 2, 100 - k - (100 - k) // 2],
                missing=int(k),
                family=family,
                reference_total=569,
            ).missing_verdict
            == "drift"
            for k in missing
        )
    assert alerts / 200 <= 0.05


def test_a_tiny_window_is_judged_by_the_exact_binomial_not_the_normal_bound() -> None:
    """2 of 5 values beyond the range of 569 training rows: the normal bound (0.29 at 5 rows)
    calls it drift, the exact binomial tail at the boundary (0.8 %, against 0.05 / 2 / 60) not."""
    rng = np.random.default_rng(31)
    numeric = build_profile(pd.DataFrame({"x": rng.normal(size=569)})).features[0]
    inside, outside = 0.0, 10.0
    counts, missing, unseen = numeric.tally(np.array([inside] * 3 + [outside] * 2))
    report = compare(numeric, counts, missing, unseen=unseen, family=Family(tests=60))
    assert unseen == 2 and report.unseen_verdict != "drift"
    counts, missing, unseen = numeric.tally(np.full(40, outside))
    shown = compare(numeric, counts, missing, unseen=unseen, family=Family(tests=60))
    assert shown.unseen_verdict == "drift"  # 40 of 40 is shown all the same


def test_the_binomial_tail_matches_scipy() -> None:
    from scipy import stats

    from drift.decision import binomial_upper_tail

    for count, rows, rate in [(5, 5, 0.4), (3, 40, 0.03), (0, 10, 0.5), (12, 13, 0.4)]:
        assert binomial_upper_tail(count, rows, rate) == pytest.approx(
            stats.binom.sf(count - 1, rows, rate), rel=1e-9
        )
