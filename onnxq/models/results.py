"""What a model answers for a batch of rows, shaped by its task: the one place that knows it.

- classification: `labels`, `probabilities` (columns in the order of `classes`; absent for a
  classifier without probabilities, e.g. LinearSVC) and `classes`;
- regression: `predictions` (a number per row, or a list per row for several targets) and
  `targets`;
- tensor: `outputs`, each output tensor's rows by output name.

The same object is the v1 answer, a job's result, the source of each prediction-log line and,
through its raw `tensors`, of a V2 answer.

A float32 column stays the model's array until an answer needs JSON values (`json_columns`):
the prediction log writes the array as it is (the same values, each float32's shortest decimal,
though orjson may choose another notation for it: 5e-6 or 0.000005), so a binary V2 or gRPC
answer never pays for lists it does not send.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from onnxq.models.manifest import Manifest, Task

# Per-row answer fields -> the key a prediction-log line gives one row's value.
LOG_KEYS = {"labels": "label", "probabilities": "probabilities", "predictions": "prediction"}


def float32_values(array: np.ndarray) -> list[Any]:
    """Nested lists of the shortest decimals that round-trip each float32 value.

    JSON clients then read 0.98, not 0.9800000190734863, and np.float32 of what
    they read is bit-for-bit the value onnxruntime produced.
    """
    # orjson writes float32 with its shortest round-trip decimal (17x faster than astype(str)).
    encoded = orjson.dumps(
        np.ascontiguousarray(array, dtype=np.float32), option=orjson.OPT_SERIALIZE_NUMPY
    )
    return orjson.loads(encoded)  # type: ignore[no-any-return]


def json_column(values: list[Any] | np.ndarray) -> list[Any]:
    """A column as JSON-ready lists (float32 arrays as their shortest decimals)."""
    return float32_values(values) if isinstance(values, np.ndarray) else values


def _float32_column(array: np.ndarray) -> list[Any] | np.ndarray:
    """A per-row column kept as its array when float32 (converted when JSON needs it)."""
    return np.ascontiguousarray(array) if array.dtype == np.float32 else tensor_values(array)


def tensor_values(array: np.ndarray) -> list[Any]:
    """An output tensor as nested JSON lists, each value exactly as the model produced it."""
    if array.dtype in (np.float32, np.float16):
        return float32_values(array)  # float16 widens to float32 exactly
    return array.tolist()  # type: ignore[no-any-return]  # float64, ints, bools, strings


@dataclass(frozen=True)
class PredictionResult:
    """One batch's answer in row order. `columns` hold one value per row (a list, or a float32
    array: `json_columns` are lists); `constants` (the classes, the targets) hold for every row;
    `tensors` are the raw outputs it was made from."""

    task: Task
    columns: dict[str, list[Any] | np.ndarray] = field(compare=False)
    constants: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, manifest: Manifest, tensors: dict[str, np.ndarray]) -> PredictionResult:
        """The answer `manifest`'s model gives when its session produced `tensors`."""
        if manifest.task == "classification":
            columns = {"labels": tensors[manifest.label_output].tolist()}  # type: ignore[index]
            if manifest.probability_output is not None:
                columns["probabilities"] = _float32_column(tensors[manifest.probability_output])
            constants: dict[str, Any] = {"classes": list(manifest.class_labels)}
        elif manifest.task == "regression":
            values = tensors[manifest.prediction_output]  # type: ignore[index]
            values = values.reshape(len(values), -1)
            if len(manifest.targets) == 1:
                values = values[:, 0]  # one number per row, as a single-target model predicts
            columns = {"predictions": _float32_column(values)}
            constants = {"targets": list(manifest.targets)}
        else:
            columns = {name: tensor_values(tensors[name]) for name in manifest.answer_outputs}
            constants = {}
        return cls(manifest.task, columns, constants, tensors)

    @classmethod
    def classification(
        cls, labels: list[Any], probabilities: list[list[float]] | None, classes: list[Any]
    ) -> PredictionResult:
        """A classifier's answer from its values (tests, benchmarks, tools)."""
        columns = {"labels": labels}
        if probabilities is not None:
            columns["probabilities"] = probabilities
        return cls("classification", columns, {"classes": classes})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PredictionResult):
            return NotImplemented
        return (self.task, self.json_columns, self.constants) == (
            other.task,
            other.json_columns,
            other.constants,
        )

    @property
    def json_columns(self) -> dict[str, list[Any]]:
        return {key: json_column(values) for key, values in self.columns.items()}

    @property
    def labels(self) -> list[Any]:
        return json_column(self.columns["labels"])

    @property
    def probabilities(self) -> list[list[float]]:
        return json_column(self.columns["probabilities"])

    @property
    def classes(self) -> list[Any]:
        return self.constants["classes"]  # type: ignore[no-any-return]

    @property
    def predictions(self) -> list[Any]:
        return json_column(self.columns["predictions"])

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def to_dict(self) -> dict[str, Any]:
        """The answer's fields: what /v1 predict returns and a job's result holds."""
        if self.task == "tensor":
            return {"outputs": self.json_columns}
        return {**self.json_columns, **self.constants}

    def part(self, start: int, end: int) -> PredictionResult:
        """Rows start..end (one job's rows of a micro-batch)."""
        columns = {key: values[start:end] for key, values in self.columns.items()}
        return PredictionResult(self.task, columns, self.constants)

    @classmethod
    def joined(cls, parts: list[PredictionResult]) -> PredictionResult:
        """The chunks of one batch, run separately, as one result."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        columns: dict[str, list[Any] | np.ndarray] = {}
        for key in first.columns:
            pieces = [part.columns[key] for part in parts]
            if all(isinstance(piece, np.ndarray) for piece in pieces):
                columns[key] = np.concatenate(pieces)  # float32 stays the model's arrays
            else:
                columns[key] = [v for piece in pieces for v in json_column(piece)]
        return cls(first.task, columns, first.constants)

    def profile_outputs(self) -> dict[str, Any]:
        """The outputs as drift's build_profile takes them: keyed like the log line's fields,
        with a regressor's target names."""
        outputs: dict[str, Any] = {key: json_column(v) for key, v in self.log_columns()}
        if "targets" in self.constants:
            outputs["targets"] = self.constants["targets"]
        return outputs

    def log_columns(self) -> list[tuple[str, list[Any] | np.ndarray]]:
        """(log-line key, values per row): the fields each prediction-log line carries."""
        if self.task == "tensor":
            names = list(self.columns)
            rows = zip(*self.columns.values(), strict=True)
            return [("outputs", [dict(zip(names, row, strict=True)) for row in rows])]
        return [(LOG_KEYS[key], values) for key, values in self.columns.items()]
