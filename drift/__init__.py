"""Drift: compare what a model is served (the prediction log) with what it was trained on.

A pure library: no Flask, no Celery, no gateway or worker imports.

    profile = build_profile(training_frame, outputs={"probabilities": p, "label": y}, bins=10)
    profile.save("models/breast-cancer/1/profile.json")
    profile = ReferenceProfile.load("models/breast-cancer/1/profile.json")
    report = compute_drift(profile, "var/predictions", "breast-cancer", version=1)
    report.drifted  # names of the features whose PSI (or missing rate) is shown above threshold
"""

from importlib import import_module
from typing import Any

# drift.psi is light (numpy, pydantic) and imported now; its `psi` function must win over the
# submodule of the same name.
from drift.decision import Family
from drift.psi import (
    DEFAULT_MIN_ROWS,
    DEFAULT_THRESHOLD,
    EPSILON,
    DriftReport,
    FeatureReport,
    Verdict,
    current_shares,
    noise_level,
    psi,
    sort_reports,
)
from drift.verdicts import compare, verdict

# The rest is imported on first use (PEP 562): the gateway reads a report's schema from
# drift.psi without loading pandas, which only the worker's image carries.
_EXPORTS = {
    "check_family": "drift.compute",
    "compute_drift": "drift.compute",
    "WindowCounts": "drift.log_reader",
    "log_files": "drift.log_reader",
    "read_window": "drift.log_reader",
    "window_bounds": "drift.log_reader",
    "CategoricalFeature": "drift.feature_bins",
    "LABEL": "drift.profile",
    "NumericFeature": "drift.feature_bins",
    "PROBABILITY": "drift.profile",
    "ReferenceProfile": "drift.profile",
    "UNSEEN": "drift.feature_bins",
    "build_profile": "drift.profile",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'drift' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)


__all__ = [
    "DEFAULT_MIN_ROWS",
    "DEFAULT_THRESHOLD",
    "EPSILON",
    "LABEL",
    "PROBABILITY",
    "UNSEEN",
    "CategoricalFeature",
    "DriftReport",
    "Family",
    "FeatureReport",
    "NumericFeature",
    "ReferenceProfile",
    "Verdict",
    "WindowCounts",
    "build_profile",
    "check_family",
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
