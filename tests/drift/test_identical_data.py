"""No false drift on identical data: the reproductions of issue 14, each through the same path a
check takes (a profile from training data, the window's values as the log holds them: float32,
bools as 0/1, ±inf as null)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drift import Family, build_profile, compare
from drift.feature_bins import NumericFeature

ONE_FEATURE = Family(tests=2)


def logged(values: np.ndarray) -> np.ndarray:
    """What the log reader hands the bins: the float32 values the model saw."""
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def psi_of_the_same_values(training: pd.DataFrame) -> float:
    profile = build_profile(training)
    feature = profile.features[0]
    counts, missing = feature.count(logged(training.iloc[:, 0].to_numpy(dtype=np.float64)))
    report = compare(feature, counts, missing, family=ONE_FEATURE)
    assert report.verdict != "drift"
    assert report.psi is not None
    return report.psi


def test_a_constant_float64_feature_is_binned_as_the_float32_the_log_holds() -> None:
    """Was PSI 18.4: the training 0.1 (float64) below the logged 0.1 (float32) 0.10000000149."""
    assert psi_of_the_same_values(pd.DataFrame({"c": [0.1] * 500})) < 0.01


def test_a_feature_recorded_to_one_decimal_keeps_its_bins_through_float32() -> None:
    """Was PSI 0.21-0.24: values on a training cut crossed it when logged as float32."""
    rng = np.random.default_rng(3)
    training = pd.DataFrame({"d": rng.integers(0, 60, 5000) / 10})
    assert psi_of_the_same_values(training) < 0.01


def test_a_bool_column_is_profiled_as_the_0_and_1_the_model_is_fed() -> None:
    """Was PSI 17.8: categories 'True'/'False' against the log's 1.0/0.0."""
    rng = np.random.default_rng(4)
    flags = rng.random(1000) < 0.3
    profile = build_profile(pd.DataFrame({"flag": flags}))
    feature = profile.features[0]
    assert feature.bin_labels[:2] == ["0", "1"]
    counts, _ = feature.count(logged(flags.astype(np.float64)))
    report = compare(feature, counts, family=ONE_FEATURE)
    assert report.psi is not None and report.psi < 0.01


def test_a_value_holding_a_tenth_of_the_rows_or_more_gets_a_bin_of_its_own() -> None:
    """Was PSI 0 however far the share of a 90 % value fell: its cuts were [v] and an empty bin."""
    rng = np.random.default_rng(5)
    training = np.where(rng.random(2000) < 0.9, 0.0, rng.normal(5, 1, 2000))
    feature = build_profile(pd.DataFrame({"z": training})).features[0]
    assert isinstance(feature, NumericFeature)
    assert feature.count(np.array([0.0]))[0].tolist().count(1) == 1
    assert max(feature.shares) == pytest.approx(0.9, abs=0.02)  # the 90 % in one bin
    window = np.where(rng.random(2000) < 0.3, 0.0, rng.normal(5, 1, 2000))  # 30 % zeros now
    counts, _ = feature.count(logged(window))
    report = compare(feature, counts, family=ONE_FEATURE)
    assert report.verdict == "drift" and report.psi > 1.0


def test_infinities_count_as_missing_in_the_profile_as_in_the_log() -> None:
    """The log writes ±inf as null (JSON has no infinity): the library treats them the same."""
    feature = build_profile(pd.DataFrame({"x": [1.0, 2.0, np.inf, -np.inf, 3.0]})).features[0]
    assert feature.rows == 3 and feature.missing_rate == pytest.approx(0.4)
    counts, missing = feature.count(np.array([np.inf, 2.0, -np.inf]))
    assert (int(counts.sum()), missing) == (1, 2)
