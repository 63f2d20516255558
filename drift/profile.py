"""The reference profile: what the training data looked like, in bins, without the data itself.

A profile is a small JSON document (kilobytes): for every input feature, in manifest order,

- numeric features: the interior quantile cut points fitted on the training data (``bins`` quantile
  bins by default 10; tied cut points merged, so a feature with many equal values gets fewer bins),
  and the share of training rows in each bin. The outer bins are open-ended, ``(-inf, c0)`` and
  ``[c_last, +inf)``, so values outside the training range still land in a bin. Bin ``i`` is
  ``[cuts[i-1], cuts[i])`` (left-closed), as ``np.searchsorted(cuts, x, side="right")`` assigns it.
  A constant feature gets the cuts ``[v, nextafter(v)]``: below / equal / above.
- categorical (object, string, bool, or named in ``categorical``) features: the share of each
  training category (the ``max_categories`` most frequent ones) plus a last "unseen" bucket that
  receives every other value; its training share is that of the categories not kept (usually 0).
  Categories are compared as text, integral floats written as integers: the prediction log writes
  features as float32, so a category code 2 comes back as 2.0 and must still match.
- every feature: the missing rate (None / NaN), kept apart from the bins; bin shares are over the
  non-missing rows. For numeric features a value that is not a number counts as missing.

With model outputs, the profile also describes the model's output distribution: the predicted
probability of the last class (the positive class of a binary classifier) in quantile bins, and the
label proportions, binned exactly like a numeric and a categorical feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from drift.atomic_file import write_text_atomically
from drift.feature_bins import (
    DEFAULT_BINS,
    MAX_CATEGORIES,
    CategoricalFeature,
    NumericFeature,
    categorical_feature,
    numeric_feature,
)
from drift.outputs import output_columns

PROBABILITY = "__probability__"
LABEL = "__label__"
PROFILE_FORMAT = 1
PROFILE_FILE = "profile.json"  # beside manifest.json in the model version's directory


FeatureProfile = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="kind")]


class OutputValue(BaseModel):
    """One profiled output number and where a prediction-log line holds it (drift/outputs.py)."""

    model_config = ConfigDict(extra="forbid")

    path: list[str | int]
    feature: NumericFeature


# A model's predictions on its own training rows are not what it will predict on new rows (a
# random forest's are nearly certain there: PSI 0.58 against fresh rows from the same
# population, a permanent "drift"), so an output profile names its out-of-sample source.
OutputsSource = Literal["out-of-fold", "held-out"]
OUTPUTS_SOURCES = ("out-of-fold", "held-out")


class ReferenceProfile(BaseModel):
    """The training distribution, feature by feature in manifest order, plus model outputs."""

    model_config = ConfigDict(extra="forbid")

    format: int = PROFILE_FORMAT
    model: str | None = None
    version: int | None = None
    created_at: datetime
    rows: int = Field(description="training rows")
    bins: int = Field(description="quantile bins requested for numeric features")
    features: list[FeatureProfile]
    probability: NumericFeature | None = Field(
        default=None, description="predicted probability of the last class, out of sample"
    )
    label: CategoricalFeature | None = Field(
        default=None, description="predicted label proportions, out of sample"
    )
    values: list[OutputValue] = Field(
        default_factory=list,
        description="numeric outputs (a regressor's predictions, a tensor model's outputs), "
        "out of sample: drift/outputs.py",
    )
    outputs_source: OutputsSource | None = Field(
        default=None,
        description="where the output profile's predictions come from: out-of-fold "
        "predictions on the training rows, or the model's predictions on held-out rows",
    )
    skipped: dict[str, str] = Field(
        default_factory=dict,
        description="inputs and outputs not profiled, each with the reason",
    )

    @property
    def outputs(self) -> list[NumericFeature | CategoricalFeature]:
        """Every profiled output, in the order a drift report lists them."""
        named = [o for o in (self.probability, self.label) if o is not None]
        return [*named, *(value.feature for value in self.values)]

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON, atomically (a worker may be reading the old one)."""
        return write_text_atomically(Path(path), self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def _is_categorical(column: pd.Series) -> bool:
    return bool(pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column))


def build_profile(
    frame: pd.DataFrame | np.ndarray,
    outputs: Mapping[str, Any] | None = None,
    bins: int = DEFAULT_BINS,
    *,
    feature_names: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    model: str | None = None,
    version: int | None = None,
    max_categories: int = MAX_CATEGORIES,
    outputs_source: OutputsSource | None = None,
    skipped: Mapping[str, str] | None = None,
) -> ReferenceProfile:
    """Profile training data: a DataFrame (names from its columns) or a matrix + ``feature_names``.

    Column order must be the manifest's feature order: prediction log rows are matched by position.
    Object/string/bool columns, and the names in ``categorical``, are profiled as categorical.

    ``outputs`` (optional) holds the model's outputs **out of sample**, keyed like the prediction
    log fields: ``"probabilities"`` (rows x classes, or the probabilities of the last class)
    and/or ``"label"``; ``outputs_source`` says which: ``"out-of-fold"`` (cross-validated
    predictions on the training rows) or ``"held-out"`` (the model on rows it was not trained
    on; they need not be as many as the training rows). Labels are compared as strings, so pass
    the values the model's label output logs (``0``/``1``, not ``False``/``True``). A
    regressor's ``"prediction"`` (with its ``"targets"``) and a tensor model's ``"outputs"`` are
    profiled as numbers (drift/outputs.py). ``skipped`` names inputs not profiled, with why.

    A model without feature columns (a tensor model) has an empty ``frame``: its profile holds
    its outputs only, and its ``rows`` are the outputs' rows.
    """
    if outputs is not None and outputs_source not in OUTPUTS_SOURCES:
        raise ValueError(
            "outputs need outputs_source='out-of-fold' or 'held-out': a model's predictions on "
            "its own training rows are not a reference for its predictions on new rows"
        )
    if isinstance(frame, pd.DataFrame):
        data = frame.copy()
        if feature_names is not None:
            data.columns = list(feature_names)
        data.columns = [str(c) for c in data.columns]
    else:
        matrix = np.asarray(frame)
        if matrix.ndim != 2:
            raise ValueError("training data must be two-dimensional (rows x features)")
        if feature_names is None:
            raise ValueError("feature_names are required with a numpy matrix")
        if len(feature_names) != matrix.shape[1]:
            raise ValueError(f"{len(feature_names)} feature names for {matrix.shape[1]} columns")
        data = pd.DataFrame(matrix, columns=[str(n) for n in feature_names])
    if len(set(data.columns)) != len(data.columns):
        raise ValueError("feature names must be unique")

    forced = set(categorical)
    features: list[NumericFeature | CategoricalFeature] = []
    for name in data.columns:
        column = data[name]
        if name in forced or _is_categorical(column):
            features.append(categorical_feature(name, column, max_categories))
        else:
            features.append(numeric_feature(name, column, bins))

    probability = label = None
    values: list[OutputValue] = []
    skipped = dict(skipped or {})
    output_rows = 0
    if outputs is not None:
        if outputs.get("probabilities") is not None:
            probabilities = np.asarray(outputs["probabilities"], dtype=np.float64)
            if probabilities.ndim == 2:
                probabilities = probabilities[:, -1]
            probability = numeric_feature(PROBABILITY, probabilities, bins)
            output_rows = len(probabilities)
        if outputs.get("label") is not None:
            label = categorical_feature(LABEL, list(outputs["label"]), max_categories)
            output_rows = len(outputs["label"])
        columns, left_out = output_columns(outputs)
        skipped.update(left_out)
        for name, path, column in columns:
            values.append(OutputValue(path=path, feature=numeric_feature(name, column, bins)))
            output_rows = len(column)

    return ReferenceProfile(
        model=model,
        version=version,
        created_at=datetime.now(UTC),
        rows=len(data) if features else output_rows,
        bins=bins,
        features=features,
        probability=probability,
        label=label,
        values=values,
        outputs_source=outputs_source if outputs is not None else None,
        skipped=skipped,
    )
