"""The reference profile: quantile bins, ties, outer bins, missing values, categories, JSON."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drift import UNSEEN, ReferenceProfile, build_profile
from drift.feature_bins import CategoricalFeature, NumericFeature, numeric_feature


def test_numeric_bins_are_deciles_of_the_training_data_by_default() -> None:
    feature = numeric_feature("x", np.arange(1000, dtype=float))
    assert feature.n_bins == 10
    assert feature.shares == pytest.approx([0.1] * 10)
    assert feature.edges[0] == -math.inf
    assert feature.edges[-1] == math.inf


def test_tied_quantile_edges_are_merged_into_one() -> None:
    # 70 % zeros: the 10 %..70 % deciles are all 0 and become one cut point.
    values = np.r_[np.zeros(700), np.arange(1, 301, dtype=float)]
    feature = numeric_feature("x", values)
    assert len(feature.cuts) == len(set(feature.cuts))
    assert feature.cuts == sorted(feature.cuts)
    assert feature.cuts.count(0.0) == 1
    assert feature.n_bins < 10
    # every zero sits in the bin [0, next cut)
    zero_bin = feature.cuts.index(0.0) + 1
    assert feature.shares[zero_bin] == pytest.approx(0.7)
    assert sum(feature.shares) == pytest.approx(1.0)


def test_a_constant_feature_gets_below_equal_and_above_bins() -> None:
    feature = numeric_feature("x", np.full(100, 3.0))
    assert feature.shares == [0.0, 1.0, 0.0]
    counts, _ = feature.count([2.0, 3.0, 3.5])
    assert counts.tolist() == [1, 1, 1]


def test_values_outside_the_training_range_land_in_the_open_ended_outer_bins() -> None:
    feature = numeric_feature("x", np.arange(100, dtype=float))
    counts, missing = feature.count([-1e9, -5.0, 1e9, 150.0])
    assert counts[0] == 2
    assert counts[-1] == 2
    assert counts.sum() == 4
    assert missing == 0


def test_bins_are_left_closed_so_a_value_on_an_edge_goes_to_the_bin_above() -> None:
    feature = NumericFeature(
        name="x", cuts=[1.0, 2.0], shares=[0.3, 0.3, 0.4], rows=10, missing_rate=0
    )
    counts, _ = feature.count([0.999, 1.0, 2.0])
    assert counts.tolist() == [1, 1, 1]


def test_missing_values_are_counted_apart_from_the_bins() -> None:
    values = [1.0, None, float("nan"), 2.0, "not a number", 3.0]
    feature = numeric_feature("x", np.arange(10, dtype=float))
    counts, missing = feature.count(values)
    assert missing == 3
    assert counts.sum() == 3

    trained = numeric_feature("x", [1.0, 2.0, None, 4.0])
    assert trained.missing_rate == pytest.approx(0.25)
    assert trained.rows == 3
    assert sum(trained.shares) == pytest.approx(1.0)


def test_categorical_features_have_category_shares_and_an_unseen_bucket() -> None:
    frame = pd.DataFrame({"colour": ["red"] * 6 + ["blue"] * 3 + [None]})
    profile = build_profile(frame)
    feature = profile.features[0]
    assert isinstance(feature, CategoricalFeature)
    assert feature.categories == ["red", "blue"]
    assert feature.bin_labels == ["red", "blue", UNSEEN]
    assert feature.shares == pytest.approx([6 / 9, 3 / 9, 0.0])
    assert feature.missing_rate == pytest.approx(0.1)
    counts, missing = feature.count(["red", "green", "purple", None, "blue"])
    assert counts.tolist() == [1, 1, 2]
    assert missing == 1


def test_a_numpy_matrix_needs_feature_names_and_keeps_their_order() -> None:
    matrix = np.random.default_rng(0).normal(size=(200, 3))
    with pytest.raises(ValueError):
        build_profile(matrix)
    profile = build_profile(matrix, feature_names=["c", "a", "b"])
    assert profile.feature_names == ["c", "a", "b"]
    assert all(isinstance(f, NumericFeature) for f in profile.features)
    assert profile.rows == 200


def test_model_outputs_profile_the_last_class_probability_and_the_label_shares() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(500)
    outputs = {"probabilities": np.c_[1 - p, p], "label": (p > 0.5).astype(int)}
    profile = build_profile(
        pd.DataFrame({"x": rng.normal(size=500)}), outputs=outputs, outputs_source="out-of-fold"
    )
    assert profile.outputs_source == "out-of-fold"
    assert profile.probability is not None and profile.label is not None
    assert profile.probability.n_bins == 10
    assert profile.probability.shares == pytest.approx([0.1] * 10)
    assert sorted(profile.label.categories) == ["0", "1"]
    assert sum(profile.label.shares) == pytest.approx(1.0)


def test_profile_round_trips_through_json_and_stays_small_for_30_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.lognormal(size=(569, 30)), columns=[f"feature {i}" for i in range(30)])
    p = rng.random(569)
    outputs = {"probabilities": np.c_[1 - p, p], "label": p > 0.5}
    profile = build_profile(frame, outputs=outputs, outputs_source="held-out")
    path = profile.save(tmp_path / "profile.json")
    assert path.stat().st_size < 50_000
    loaded = ReferenceProfile.load(path)
    assert loaded == profile
    assert loaded.feature_names == list(frame.columns)


def test_the_profile_holds_no_raw_training_values() -> None:
    values = np.random.default_rng(3).normal(size=1000)
    text = build_profile(pd.DataFrame({"x": values})).to_json()
    assert repr(float(values[123])) not in text


def test_a_category_code_logged_as_a_float_matches_the_integer_training_category() -> None:
    profile = build_profile(pd.DataFrame({"code": [0, 1, 1, 2]}), categorical=["code"])
    feature = profile.features[0]
    assert isinstance(feature, CategoricalFeature)
    counts, _ = feature.count([1.0, 2.0, 2.5, 0])
    assert counts.tolist() == [1, 1, 1, 1]  # categories "1", "0", "2", then unseen (2.5)


def test_outputs_without_an_out_of_sample_source_are_refused() -> None:
    """A model's outputs on its own training rows are not a reference: a random forest on
    20,000 new rows from its training population showed probability PSI 0.58 against them."""
    p = np.random.default_rng(3).random(100)
    with pytest.raises(ValueError, match="out-of-fold"):
        build_profile(pd.DataFrame({"x": p}), outputs={"probabilities": p})
    assert build_profile(pd.DataFrame({"x": p})).outputs_source is None
