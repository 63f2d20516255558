"""The missing-rate rule: a rise above 10 points and above its noise level is drift."""

from __future__ import annotations

import math

import pytest

from drift import compare
from drift.profile import NumericFeature
from drift.psi import missing_noise_level, missing_verdict


def feature(missing_rate: float = 0.0, rows: int = 1000) -> NumericFeature:
    return NumericFeature(
        name="x", cuts=[0.0], shares=[0.5, 0.5], rows=rows, missing_rate=missing_rate
    )


def test_missing_noise_level_is_the_one_sided_95_percent_two_proportion_bound() -> None:
    # pooled p = (50 + 150) / (1000 + 1000) = 0.1
    # sqrt(0.1 * 0.9 * (1/1000 + 1/1000)) = sqrt(0.00018) = 0.0134164
    # z_0.95 = 1.6448536;  1.6448536 * 0.0134164 = 0.0220681
    assert missing_noise_level(50, 1000, 150, 1000) == pytest.approx(0.0220681, abs=1e-6)


def test_a_rise_above_threshold_and_noise_is_drift_and_a_fall_never_is() -> None:
    assert missing_verdict(0.0, 0.25, noise=0.02, current_total=1000) == "drift"
    assert missing_verdict(0.0, 0.05, noise=0.02, current_total=1000) == "stable"  # < 0.1
    assert missing_verdict(0.0, 0.25, noise=0.3, current_total=1000) == "stable"  # < noise
    assert missing_verdict(0.5, 0.0, noise=0.02, current_total=1000) == "stable"  # a fall
    assert missing_verdict(0.0, 0.9, noise=0.02, current_total=99) == "insufficient data"


def test_compare_reports_the_missing_rate_verdict_apart_from_the_bins() -> None:
    # 300 missing of 1000 current rows; the 700 present ones split like the reference
    report = compare(feature(), [350, 350], missing=300)
    assert report.psi == 0.0 and report.verdict == "stable"
    assert report.current_missing_rate == pytest.approx(0.3)
    assert report.missing_verdict == "drift" and report.drifted
    assert 0 < report.missing_noise_level < 0.05


def test_the_reference_total_counts_the_missing_training_rows_too() -> None:
    # 800 non-missing training rows at a 20 % missing rate: 1000 training rows in all
    derived = compare(feature(missing_rate=0.2, rows=800), [400, 400], missing=200)
    given = compare(
        feature(missing_rate=0.2, rows=800), [400, 400], missing=200, reference_total=1000
    )
    assert derived.missing_noise_level == pytest.approx(given.missing_noise_level)
    assert given.missing_verdict == "stable"  # 20 % before, 20 % now


def test_a_feature_missing_entirely_in_training_has_no_noise_level_to_divide_by() -> None:
    report = compare(feature(missing_rate=1.0, rows=0), [0, 0], missing=500)
    assert report.missing_verdict == "stable" and not math.isnan(report.current_missing_rate)
