"""Drift's decision rule, calibrated: false alerts with no drift, and detection of real shifts,
per window size, measured with the library's own functions.

    .venv/bin/python bench/drift_calibration.py [--reps 200] [--reference-rows 569]

Each repetition draws a reference sample from the population (569 rows, the demo model's training
set, by default), profiles it with `drift.build_profile`, and then, for each window size, draws the
current window's bin counts from the population's true shares in the profile's bins (a multinomial
draw: what binning that many logged rows would give, without making them) and judges every feature
with `drift.compare` as one check (`drift.check_family`). Two tables go into docs/drift.md:

1. no drift: the share of checks that raise any alert, for models of 1, 10, 30 and 100 standard
   normal features, and for 30 features each 30 % missing in the reference and the window;
2. detection: the share of checks of a 30-feature model that flag its one moved feature (mean
   +0.25, +0.5, +1 SD; scale x1.5, x2; 5 % of values beyond the training maximum; a categorical
   feature's shares 50/30/20 % -> 25/30/45 %), beside the minimum window and the population PSI.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# As a script, Python puts bench/ first on sys.path, where bench/drift.py would hide the drift
# package: import from the repository root instead.
if Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench import report  # noqa: E402
from drift import build_profile, check_family, compare  # noqa: E402
from drift.decision import minimum_window  # noqa: E402
from drift.feature_bins import CategoricalFeature, NumericFeature  # noqa: E402
from drift.profile import ReferenceProfile  # noqa: E402
from drift.psi import psi  # noqa: E402

WINDOWS = (20, 50, 100, 150, 200, 500, 1_000, 5_000, 50_000)
DOCS = ROOT / "docs" / "drift.md"
OWNER = "bench/drift_calibration.py"
CATEGORIES = (0, 1, 2)
CATEGORY_SHARES = (0.5, 0.3, 0.2)


def normal_masses(cuts: list[float], mean: float = 0.0, sd: float = 1.0) -> np.ndarray:
    """The shares of N(mean, sd) between consecutive `cuts` (with -inf and +inf around them)."""
    edges = [-math.inf, *cuts, math.inf]
    cdf = [0.5 * (1 + math.erf((e - mean) / (sd * math.sqrt(2)))) for e in edges]
    return np.diff(np.asarray(cdf))


def cells(feature: NumericFeature | CategoricalFeature) -> list[float]:
    """A numeric feature's cuts with its training minimum and maximum among them: the cells a
    window's values fall into, the first and last beyond the training range."""
    assert isinstance(feature, NumericFeature)
    above = float(np.nextafter(feature.maximum, math.inf))  # the maximum is inside the range
    return [feature.minimum, *feature.cuts, above]  # type: ignore[list-item]


# A population of one feature: its shares in the feature's cells (numeric) or bins (categorical).
Population = Callable[[NumericFeature | CategoricalFeature], np.ndarray]


def standard(feature: NumericFeature | CategoricalFeature) -> np.ndarray:
    return normal_masses(cells(feature))


def moved(mean: float, sd: float) -> Population:
    def masses(feature: NumericFeature | CategoricalFeature) -> np.ndarray:
        return normal_masses(cells(feature), mean, sd)

    return masses


def beyond_the_maximum(share: float) -> Population:
    """`share` of the window above the reference's largest value, the rest as before."""

    def masses(feature: NumericFeature | CategoricalFeature) -> np.ndarray:
        within = normal_masses(cells(feature)) * (1 - share)
        within[-1] += share
        return within

    return masses


def categorical(shares: tuple[float, ...]) -> Population:
    def masses(feature: NumericFeature | CategoricalFeature) -> np.ndarray:
        assert isinstance(feature, CategoricalFeature)
        out = np.zeros(feature.n_bins)
        for category, share in zip(CATEGORIES, shares, strict=True):
            out[feature.categories.index(str(category))] = share
        return out

    return masses


def in_bins(feature: NumericFeature | CategoricalFeature, cells: np.ndarray) -> np.ndarray:
    """Per-cell amounts (counts or shares) as the feature's bins: a numeric feature's cells
    below its minimum and above its maximum belong to its open outer bins."""
    if isinstance(feature, CategoricalFeature):
        return cells
    # cells: below the minimum, bin 0 from the minimum, ..., the last bin to the maximum, above
    binned = cells[1:-1].copy()
    binned[0] += cells[0]
    binned[-1] += cells[-1]
    return binned


def window_counts(
    feature: NumericFeature | CategoricalFeature,
    masses: np.ndarray,
    rows: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Bin counts and unseen values of `rows` values drawn from a population's `masses`."""
    drawn = rng.multinomial(rows, masses / masses.sum())
    unseen = drawn[-1] if isinstance(feature, CategoricalFeature) else drawn[0] + drawn[-1]
    return in_bins(feature, drawn), int(unseen)


@dataclass(frozen=True)
class Model:
    """`features` standard normal features (the first one categorical if `categorical_first`),
    each `missing` missing in the reference and in the window."""

    features: int
    missing: float = 0.0
    categorical_first: bool = False

    def reference(self, rows: int, rng: np.random.Generator) -> ReferenceProfile:
        matrix = rng.normal(size=(rows, self.features))
        frame = pd.DataFrame(matrix, columns=[f"f{i}" for i in range(self.features)])
        if self.categorical_first:
            frame["f0"] = rng.choice(CATEGORIES, rows, p=CATEGORY_SHARES)
        if self.missing:
            frame = frame.mask(rng.random(frame.shape) < self.missing)
        categorical = ["f0"] if self.categorical_first else []
        return build_profile(frame, categorical=categorical)


def alert_rate(
    model: Model,
    windows: tuple[int, ...],
    first: Population,
    reps: int,
    reference_rows: int,
    seed: int,
    only_first: bool = False,
) -> list[float]:
    """Per window: the share of checks that alert (on the first feature only, if `only_first`)
    when the first feature's window comes from `first` and the others' from the reference's
    population."""
    rng = np.random.default_rng(seed)
    alerts = np.zeros(len(windows))
    for _ in range(reps):
        profile = model.reference(reference_rows, rng)
        family = check_family(profile)
        for w, window in enumerate(windows):
            for i, feature in enumerate(profile.features):
                masses = (first if i == 0 else standard)(feature)
                present = rng.binomial(window, 1 - model.missing) if model.missing else window
                counts, unseen = window_counts(feature, masses, present, rng)
                drifted = compare(
                    feature,
                    counts,
                    window - present,
                    family=family,
                    reference_total=profile.rows,
                    unseen=unseen,
                ).drifted
                if drifted:
                    alerts[w] += 1
                    break
                if only_first:
                    break
    return (alerts / reps).tolist()


def population_psi(first: Population, model: Model, rows: int = 200_000) -> float:
    """The moved feature's PSI against its own population over 10 quantile bins (a large
    reference, so that sampling does not count)."""
    feature = model.reference(rows, np.random.default_rng(1)).features[0]
    unmoved = standard if feature.kind == "numeric" else categorical(CATEGORY_SHARES)
    before, after = in_bins(feature, unmoved(feature)), in_bins(feature, first(feature))
    return psi(before / before.sum(), after / after.sum())


def percent_row(label: str, rates: list[float], extra: str = "") -> str:
    cells = " | ".join(f"{rate * 100:.1f} %" for rate in rates)
    return f"| {label} | {extra}{cells} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--reference-rows", type=int, default=569)
    report.add_report_option(parser)
    parser.set_defaults(report=DOCS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    n = args.reference_rows
    header = "| " + " | ".join(f"{w:,}" for w in WINDOWS) + " |"
    rule = "|---|---:|" + "---:|" * len(WINDOWS)

    false_rows = []
    for features, missing in ((1, 0.0), (10, 0.0), (30, 0.0), (100, 0.0), (30, 0.3)):
        model = Model(features, missing)
        family = check_family(model.reference(n, np.random.default_rng(0)))
        needed = minimum_window(10, round(n * (1 - missing)), 0.2, family.per_test)
        rates = alert_rate(model, WINDOWS, standard, args.reps, n, seed=features)
        label = f"{features} feature{'s' if features > 1 else ''}" + (
            f", {missing:.0%} missing" if missing else ""
        )
        false_rows.append(percent_row(label, rates, f"{needed or '-'} | "))
        print(false_rows[-1], flush=True)

    shifts: list[tuple[str, Population, Model]] = [
        ("mean +0.25 SD", moved(0.25, 1.0), Model(30)),
        ("mean +0.5 SD", moved(0.5, 1.0), Model(30)),
        ("mean +1 SD", moved(1.0, 1.0), Model(30)),
        ("scale x1.5", moved(0.0, 1.5), Model(30)),
        ("scale x2", moved(0.0, 2.0), Model(30)),
        ("5 % beyond the training max", beyond_the_maximum(0.05), Model(30)),
        (
            "categorical 50/30/20 % -> 25/30/45 %",
            categorical((0.25, 0.3, 0.45)),
            Model(30, categorical_first=True),
        ),
    ]
    detect_rows = []
    for seed, (label, first, model) in enumerate(shifts):
        rates = alert_rate(model, WINDOWS, first, args.reps, n, seed=1000 + seed, only_first=True)
        value = population_psi(first, model)
        detect_rows.append(percent_row(label, rates, f"{value:.3f} | "))
        print(detect_rows[-1], flush=True)

    elapsed = time.monotonic() - started
    block = "\n".join(
        [
            "## Calibration (`bench/drift_calibration.py`)",
            "",
            "```sh",
            f".venv/bin/python bench/drift_calibration.py --reps {args.reps} --reference-rows {n}",
            "```",
            "",
            f"{args.reps} repetitions per cell, each with its own reference sample of {n} rows "
            "(standard normal features, 10 quantile bins, `drift.build_profile`) and its own "
            "window, judged with `drift.compare` at the shipped defaults (threshold 0.2, missing "
            f"threshold 0.1, family-wise 5 %); {elapsed:.0f} s.",
            "",
            "**No drift: share of checks raising any alert** (features' bins, missing and unseen "
            "rates; the minimum window is the fewest rows for a `stable` verdict of the bins)",
            "",
            f"| model | minimum window {header}",
            rule,
            *false_rows,
            "",
            "**Detection: share of checks of a 30-feature model flagging the moved feature** "
            "(population PSI over 10 quantile bins beside it; at the 0.2 threshold a shift whose "
            "PSI is below 0.2 is by design not drift)",
            "",
            f"| shift | PSI {header}",
            rule,
            *detect_rows,
        ]
    )
    report.write_section(args.report, OWNER, block)
    print(f"wrote {args.report} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
