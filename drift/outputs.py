"""A model's numeric outputs in a profile: a regressor's predictions, a tensor model's outputs.

A classifier's outputs are profiled as its last-class probability and its labels (profile.py).
Any other model's outputs are numbers: each becomes a numeric "feature" of its own, binned like
an input feature, found in a prediction-log line by its `path`:

- a regressor: ``prediction`` (one target; the line's ``"prediction": 12.5``), or one
  ``prediction[<target>]`` per target (``"prediction": [12.5, 3.0]``, path ``["prediction", i]``);
- a tensor model: one ``<output>[<i>]`` per value of each output row (``"outputs": {"logits":
  [[...]]}``, path ``["outputs", "logits", i]``, i counting the row's values flattened), for an
  output of at most MAX_VALUES_PER_OUTPUT values a row; a larger one (an embedding, an image) is
  not profiled, and the profile says so in `skipped`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAX_VALUES_PER_OUTPUT = 16
Path = list[str | int]


def value_at(
    line: Mapping[str, Any], path: Sequence[str | int], flattened: dict[Any, Any] | None = None
) -> Any:
    """The number at `path` in a decoded log line, or None where it is absent. `flattened`
    keeps each output row flattened once per line, for the next value of the same output."""
    value: Any = line.get(path[0]) if isinstance(path[0], str) else None
    if len(path) == 1:
        return value
    if path[0] == "prediction":
        index = path[1]
        return value[index] if isinstance(value, list) and len(value) > index else None  # type: ignore[operator]
    if not isinstance(value, dict) or path[1] not in value:
        return None
    if flattened is None or path[1] not in flattened:
        flat = np.ravel(np.asarray(value[path[1]], dtype=object))
        if flattened is not None:
            flattened[path[1]] = flat
    else:
        flat = flattened[path[1]]
    index = int(path[2])
    return flat[index] if flat.size > index else None


def output_columns(
    outputs: Mapping[str, Any],
) -> tuple[list[tuple[str, Path, Any]], dict[str, str]]:
    """The numeric output columns of `outputs` (keyed like log-line fields, plus a regressor's
    ``targets``) as (name, path, values per row), and the outputs left out with the reason."""
    columns: list[tuple[str, Path, Any]] = []
    skipped: dict[str, str] = {}
    predictions = outputs.get("prediction")
    if predictions is not None:
        array = np.asarray(predictions, dtype=np.float64)
        if array.ndim == 1:
            columns.append(("prediction", ["prediction"], array.tolist()))
        else:
            targets = list(outputs.get("targets") or range(array.shape[1]))
            for index, target in enumerate(targets):
                columns.append((f"prediction[{target}]", ["prediction", index], array[:, index]))
    rows = outputs.get("outputs")
    if rows:
        for name in rows[0]:
            values = np.asarray([row[name] for row in rows], dtype=np.float64)
            per_row = values.reshape(len(values), -1)
            width = per_row.shape[1]
            if width > MAX_VALUES_PER_OUTPUT:
                skipped[name] = (
                    f"output of {width} values a row (shape {list(values.shape[1:])}): only "
                    f"outputs of at most {MAX_VALUES_PER_OUTPUT} values are profiled"
                )
                continue
            for index in range(width):
                label = name if width == 1 else f"{name}[{index}]"
                columns.append((label, ["outputs", name, index], per_row[:, index]))
    return columns, skipped
