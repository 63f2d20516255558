"""What a prediction answers, on the client: each per-row field as a numpy array."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Result:
    """A prediction's answer: each per-row field as a numpy array, the rest as sent."""

    model: str
    version: int
    columns: dict[str, np.ndarray]  # labels, probabilities, predictions or each output
    constants: dict[str, Any] = field(default_factory=dict)  # classes, targets

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise AttributeError(name) from None

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def to_pandas(self) -> Any:
        """One row per input row: `label`, `probability_<class>` (or `prediction[_<target>]`,
        or each output, flattened)."""
        import pandas as pd

        frame: dict[str, Any] = {}
        for name, values in self.columns.items():
            labels = self._column_names(name, values)
            flat = values.reshape(len(values), -1) if values.ndim > 1 else values[:, None]
            for index, label in enumerate(labels):
                frame[label] = flat[:, index]
        return pd.DataFrame(frame)

    def to_arrow(self) -> Any:
        """A pyarrow Table of `to_pandas`'s columns (needs pyarrow)."""
        try:
            import pyarrow as pa
        except ImportError as exc:
            raise ImportError("Result.to_arrow needs pyarrow: pip install pyarrow") from exc
        return pa.Table.from_pandas(self.to_pandas(), preserve_index=False)

    def _column_names(self, name: str, values: np.ndarray) -> list[str]:
        if values.ndim == 1:
            return {"labels": ["label"], "predictions": ["prediction"]}.get(name, [name])
        width = int(np.prod(values.shape[1:]))
        names = {"probabilities": self.constants.get("classes"),
                 "predictions": self.constants.get("targets")}.get(name)  # fmt: skip
        prefix = {"probabilities": "probability", "predictions": "prediction"}.get(name, name)
        keys = names if names is not None and len(names) == width else range(width)
        return [f"{prefix}_{key}" for key in keys]

    @classmethod
    def of_table(cls, model: str, version: int, data: bytes) -> Result:
        """A result from the result route's Arrow stream (label, probability_<class>, ...),
        put back into the columns an inline result has."""
        from onnxq.models.result_table import read_arrow

        table = read_arrow(data)
        columns: dict[str, np.ndarray] = {}
        constants: dict[str, Any] = {}
        for single, plural, constant in (("label", "labels", None),
                                         ("probability", "probabilities", "classes"),
                                         ("prediction", "predictions", "targets")):  # fmt: skip
            if single in table:
                columns[plural] = table.pop(single)
                continue
            named = [name for name in table if name.startswith(f"{single}_")]
            if named:
                columns[plural] = np.column_stack([table.pop(name) for name in named])
                if constant is not None:
                    keys = [name.removeprefix(f"{single}_") for name in named]
                    constants[constant] = [int(k) if k.lstrip("-").isdigit() else k for k in keys]
        columns.update(table)  # a tensor model's outputs, flattened
        return cls(model, version, columns, constants)

    @classmethod
    def of(cls, document: dict[str, Any]) -> Result:
        body = dict(document)
        outputs = body.pop("outputs", None)
        model, version = body.pop("model", ""), body.pop("version", 0)
        body.pop("request_id", None)
        constants = {k: body.pop(k) for k in ("classes", "targets") if k in body}
        columns = {k: np.asarray(v) for k, v in (outputs or body).items()}
        return cls(model, version, columns, constants)
