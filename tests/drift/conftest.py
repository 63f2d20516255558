"""Fixtures of the drift tests."""

from __future__ import annotations

import numpy as np
import pytest

from drift import build_profile
from drift.profile import ReferenceProfile


@pytest.fixture
def number_and_code_profile() -> ReferenceProfile:
    """Model "m" version 1: a numeric feature x and a categorical code, probabilities and labels."""
    rng = np.random.default_rng(3)
    p = rng.random(2000)
    return build_profile(
        np.c_[rng.normal(0, 1, 2000), rng.integers(0, 3, 2000)],
        outputs={"probabilities": p, "label": (p > 0.5).astype(int)},
        outputs_source="held-out",
        feature_names=["x", "code"],
        categorical=["code"],
        model="m",
        version=1,
    )
