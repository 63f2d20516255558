"""Values never seen in training, a rate of their own: beyond the training range (the profile
keeps the float32 minimum and maximum) or of no training category."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drift import Family, build_profile, compare
from drift.feature_bins import CategoricalFeature, NumericFeature

THREE_TESTS = Family(tests=3)


def test_the_profile_keeps_the_training_range_as_float32() -> None:
    feature = build_profile(pd.DataFrame({"x": [0.1, 2.5, -3.25, np.nan]})).features[0]
    assert isinstance(feature, NumericFeature)
    assert (feature.minimum, feature.maximum) == (-3.25, float(np.float32(2.5)))
    counts, missing, unseen = feature.tally(np.array([-4.0, 0.0, 2.5, 3.0, np.nan]))
    assert (int(counts.sum()), missing, unseen) == (4, 1, 2)  # -4 and 3 lie outside


def test_a_profile_without_a_range_tracks_no_unseen_rate() -> None:
    old = NumericFeature(name="x", cuts=[0.0], shares=[0.5, 0.5], rows=1000, missing_rate=0.0)
    report = compare(old, [500, 500], unseen=100, family=THREE_TESTS)
    assert report.unseen_verdict is None and report.current_unseen_rate is None


def test_five_percent_beyond_the_training_maximum_is_drift() -> None:
    rng = np.random.default_rng(21)
    feature = build_profile(pd.DataFrame({"x": rng.normal(size=5000)})).features[0]
    window = np.r_[rng.normal(size=9500), rng.uniform(5, 6, 500)]
    counts, missing, unseen = feature.tally(window)
    report = compare(feature, counts, missing, unseen=unseen, family=THREE_TESTS)
    assert report.psi is not None and report.psi < 0.05  # PSI hardly moves: the open last bin
    assert report.current_unseen_rate == pytest.approx(0.05, abs=0.002)
    assert report.unseen_verdict == "drift" and report.drifted


def test_a_window_like_the_training_data_is_stable_on_its_unseen_rate() -> None:
    rng = np.random.default_rng(22)
    feature = build_profile(pd.DataFrame({"x": rng.normal(size=5000)})).features[0]
    counts, missing, unseen = feature.tally(rng.normal(size=20_000))
    report = compare(feature, counts, missing, unseen=unseen, family=THREE_TESTS)
    assert report.unseen_verdict == "stable" and not report.drifted


def test_a_new_category_is_weighed_by_its_share_not_by_a_floor() -> None:
    """The defect: an unseen category alerted only past a share set by epsilon = 1e-4."""
    rng = np.random.default_rng(23)
    training = pd.DataFrame({"c": rng.choice(["a", "b"], 5000)})
    feature = build_profile(training).features[0]
    assert isinstance(feature, CategoricalFeature)
    window = np.r_[rng.choice(["a", "b"], 9500), ["z"] * 500]
    counts, missing, unseen = feature.tally(window)
    report = compare(feature, counts, missing, unseen=unseen, family=THREE_TESTS)
    assert unseen == 500 and report.unseen_verdict == "drift"
    quiet = compare(
        feature, *feature.tally(rng.choice(["a", "b"], 10_000))[:2], unseen=0, family=THREE_TESTS
    )
    assert quiet.unseen_verdict == "stable"
