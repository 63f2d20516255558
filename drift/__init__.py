"""Drift: compare what a model is served (the prediction log) with what it was trained on.

A pure library: no Flask, no Celery, no gateway or worker imports.

    profile = build_profile(training_frame, outputs={"probabilities": p, "label": y}, bins=10)
    profile.save("models/breast-cancer/1/profile.json")
    profile = ReferenceProfile.load("models/breast-cancer/1/profile.json")
    report = compute_drift(profile, "var/predictions", "breast-cancer", version=1)
    report.drifted  # names of the features whose PSI > threshold and > noise level
"""

from drift.compute import compute_drift
from drift.log_reader import WindowCounts, log_files, read_window, window_bounds
from drift.profile import (
    LABEL,
    PROBABILITY,
    UNSEEN,
    CategoricalFeature,
    NumericFeature,
    ReferenceProfile,
    build_profile,
)
from drift.psi import (
    DEFAULT_MIN_ROWS,
    DEFAULT_THRESHOLD,
    EPSILON,
    DriftReport,
    FeatureReport,
    Verdict,
    compare,
    current_shares,
    noise_level,
    psi,
    sort_reports,
    verdict,
)

__all__ = [
    "DEFAULT_MIN_ROWS",
    "DEFAULT_THRESHOLD",
    "EPSILON",
    "LABEL",
    "PROBABILITY",
    "UNSEEN",
    "CategoricalFeature",
    "DriftReport",
    "FeatureReport",
    "NumericFeature",
    "ReferenceProfile",
    "Verdict",
    "WindowCounts",
    "build_profile",
    "compare",
    "compute_drift",
    "current_shares",
    "log_files",
    "noise_level",
    "psi",
    "read_window",
    "sort_reports",
    "verdict",
    "window_bounds",
]
