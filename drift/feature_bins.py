"""A feature's bins: quantile bins of a number, category shares of a category.

Both count values the way the prediction log holds them (float32 numbers, categories as text);
profile.py puts them together into a reference profile.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_BINS = 10
MAX_CATEGORIES = 50
UNSEEN = "__unseen__"


def _series(values: Any) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    return pd.Series(np.asarray(values, dtype=object).ravel())


def _category_key(value: Any) -> str:
    """A category as text; an integral float is written as an integer, so the code 1 logged as
    the float32 1.0 (the prediction log writes features as float32) is the training category 1,
    and a bool as 0 or 1, which is what the model is fed and the log holds."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _category_keys(series: pd.Series) -> pd.Series:
    return series.map(_category_key).astype(object)


def _numbers(values: Any) -> np.ndarray:
    """Values as the model sees them: float32 (held in float64, so that edges and values compare
    exactly as the log's float32 values will); anything that is not a number (None, "abc") and
    ±inf (which JSON, and so the prediction log, cannot hold: it logs them as null) become NaN,
    i.e. missing."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        x = values.astype(np.float32).astype(np.float64)
    else:
        numbers = pd.to_numeric(_series(values), errors="coerce")
        x = numbers.to_numpy(dtype=np.float32, na_value=np.nan).astype(np.float64)
    x[np.isinf(x)] = np.nan
    return x


class NumericFeature(BaseModel):
    """Quantile bins of one numeric feature; the outer bins are open-ended."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["numeric"] = "numeric"
    cuts: list[float] = Field(description="interior bin edges, strictly increasing")
    shares: list[float] = Field(description="training share per bin, len(cuts) + 1")
    rows: int = Field(description="non-missing training rows the shares were computed on")
    missing_rate: float
    minimum: float | None = Field(default=None, description="smallest training value (float32)")
    maximum: float | None = Field(default=None, description="largest training value (float32)")

    @property
    def n_bins(self) -> int:
        return len(self.cuts) + 1

    @property
    def tracks_unseen(self) -> bool:
        """Whether values beyond the training range are counted (profiles before 2026-12-02
        hold no minimum and maximum)."""
        return self.minimum is not None and self.maximum is not None

    @property
    def edges(self) -> list[float]:
        return [-math.inf, *self.cuts, math.inf]

    @property
    def bin_labels(self) -> list[str]:
        edges = self.edges
        return [f"[{lo:.6g}, {hi:.6g})" for lo, hi in itertools.pairwise(edges)]

    def count(self, values: Any) -> tuple[np.ndarray, int]:
        """Bin counts of ``values`` with this feature's edges, and how many were missing."""
        counts, missing, _unseen = self.tally(values)
        return counts, missing

    def tally(self, values: Any) -> tuple[np.ndarray, int, int]:
        """Bin counts, missing values, and values beyond the training range (0 if untracked)."""
        x = _numbers(values)
        missing = np.isnan(x)
        present = x[~missing]
        index = np.searchsorted(np.asarray(self.cuts, dtype=np.float64), present, side="right")
        counts = np.bincount(index, minlength=self.n_bins).astype(np.int64)
        unseen = 0
        if self.minimum is not None and self.maximum is not None:
            unseen = int(np.count_nonzero((present < self.minimum) | (present > self.maximum)))
        return counts, int(missing.sum()), unseen


class CategoricalFeature(BaseModel):
    """Category shares of one categorical feature, with a last bucket for unseen values."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["categorical"] = "categorical"
    categories: list[str]
    shares: list[float] = Field(description="training share per category, then the unseen bucket")
    rows: int = Field(description="non-missing training rows the shares were computed on")
    missing_rate: float

    @property
    def n_bins(self) -> int:
        return len(self.categories) + 1

    @property
    def bin_labels(self) -> list[str]:
        return [*self.categories, UNSEEN]

    @property
    def tracks_unseen(self) -> bool:
        return True  # its last bin

    def tally(self, values: Any) -> tuple[np.ndarray, int, int]:
        """Counts, missing values, and values of no training category (the unseen bin's)."""
        counts, missing = self.count(values)
        return counts, missing, int(counts[-1])

    def count(self, values: Any) -> tuple[np.ndarray, int]:
        """Counts per category (compared as text, 1.0 as 1); other values go to the unseen bin."""
        # Factorize first: the text of each distinct value is made once, not once per row.
        codes, uniques = pd.factorize(_series(values), use_na_sentinel=True)
        lookup = {category: i for i, category in enumerate(self.categories)}
        unseen = len(self.categories)
        bin_of = np.array(
            [lookup.get(_category_key(value), unseen) for value in uniques], dtype=np.int64
        )
        present = codes[codes >= 0]
        counts = np.bincount(bin_of[present], minlength=self.n_bins).astype(np.int64)
        return counts, int(codes.size - present.size)


def numeric_feature(name: str, values: Any, bins: int = DEFAULT_BINS) -> NumericFeature:
    """Fit quantile cut points on ``values`` (ties merged) and record the training shares."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    x = _numbers(values)
    missing = np.isnan(x)
    valid = x[~missing]
    if valid.size == 0:
        cuts: list[float] = []
    elif valid.min() == valid.max():
        value = float(valid[0])
        cuts = [value, float(np.nextafter(value, math.inf))]
    else:
        quantiles = np.quantile(valid, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        cuts = _with_heavy_values(np.unique(quantiles), valid, bins)
    feature = NumericFeature(
        name=name,
        cuts=cuts,
        shares=[0.0] * (len(cuts) + 1),
        rows=int(valid.size),
        missing_rate=float(missing.mean()) if x.size else 0.0,
        minimum=float(valid.min()) if valid.size else None,
        maximum=float(valid.max()) if valid.size else None,
    )
    counts, _ = feature.count(valid)
    if valid.size:
        feature.shares = (counts / valid.size).tolist()
    return feature


def _with_heavy_values(cuts: np.ndarray, valid: np.ndarray, bins: int) -> list[float]:
    """The cuts, plus a bin of its own for every value that holds at least 1/bins of the rows:
    [v, next float after v). Quantile cuts alone give such a value's bin its neighbours' rows
    too, or (at 90 % of the rows) leave it alone in a bin with every cut at v and an empty bin
    beside it: a fall from 90 % to 30 % then moved no PSI at all."""
    values, counts = np.unique(valid, return_counts=True)
    heavy = values[counts >= valid.size / bins]
    edges = set(cuts.tolist())
    for value in heavy.tolist():
        edges.update((value, float(np.nextafter(value, math.inf))))
    return sorted(edges)


def categorical_feature(
    name: str, values: Any, max_categories: int = MAX_CATEGORIES
) -> CategoricalFeature:
    """Record the shares of the ``max_categories`` most frequent categories; the rest is unseen."""
    series = _series(values)
    missing = series.isna().to_numpy()
    present = _category_keys(series[~missing])
    frequencies = present.value_counts(sort=True)
    categories = [str(c) for c in frequencies.index[:max_categories]]
    feature = CategoricalFeature(
        name=name,
        categories=categories,
        shares=[0.0] * (len(categories) + 1),
        rows=int(present.size),
        missing_rate=float(missing.mean()) if series.size else 0.0,
    )
    counts, _ = feature.count(present)
    if present.size:
        feature.shares = (counts / present.size).tolist()
    return feature
