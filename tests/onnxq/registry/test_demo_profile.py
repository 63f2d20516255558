"""The demo model's drift profile takes its output reference out of fold: the model's outputs on
its own training rows are not what it outputs on new rows from the same population."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from drift import Family, build_profile, compare
from drift.profile import ReferenceProfile
from onnxq.models.repository import ModelRepository
from onnxq.registry.demo import DEMO_MODEL_NAME, out_of_fold_outputs
from onnxq.registry.export_dir import INPUT_NAME, PROBABILITY_OUTPUT
from onnxq.registry.sklearn_onnx import sklearn_to_onnx


def test_the_demo_profile_says_its_outputs_are_out_of_fold(
    demo_repository: ModelRepository,
) -> None:
    paths = demo_repository.paths(DEMO_MODEL_NAME, 1)
    profile = ReferenceProfile.load(paths.profile)
    assert profile.outputs_source == "out-of-fold"
    assert profile.probability is not None and profile.probability.rows == profile.rows


def _probability_psi(profile: ReferenceProfile, probabilities: np.ndarray) -> float:
    assert profile.probability is not None
    counts, missing = profile.probability.count(probabilities)
    report = compare(profile.probability, counts, missing, family=Family(tests=2))
    assert report.psi is not None
    return report.psi


def test_an_out_of_fold_reference_matches_new_rows_where_the_in_sample_one_drifts() -> None:
    """The defect: in-sample outputs as reference, probability PSI 0.58 on 20,000 new rows."""
    X, y = make_classification(22_000, 20, n_informative=6, flip_y=0.1, random_state=0)
    X = X.astype(np.float32)
    train, new = slice(0, 2000), slice(2000, None)
    forest = RandomForestClassifier(n_estimators=50, random_state=0, n_jobs=1)
    forest.fit(X[train], y[train])
    session = ort.InferenceSession(sklearn_to_onnx(forest, X.shape[1]))

    def onnx_probability(rows: np.ndarray) -> np.ndarray:
        return session.run([PROBABILITY_OUTPUT], {INPUT_NAME: rows})[0][:, -1]

    names = [f"f{i}" for i in range(X.shape[1])]
    in_sample = build_profile(
        X[train],
        feature_names=names,
        outputs={"probabilities": onnx_probability(X[train])},
        outputs_source="held-out",  # what the old code did, mislabelled
    )
    out_of_fold = build_profile(
        X[train],
        feature_names=names,
        outputs=out_of_fold_outputs(forest, X[train], y[train]),
        outputs_source="out-of-fold",
    )
    fresh = onnx_probability(X[new])
    assert _probability_psi(in_sample, fresh) > 0.3
    assert _probability_psi(out_of_fold, fresh) < 0.05
