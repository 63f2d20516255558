"""A result's float32 columns stay arrays until JSON needs them; every answer is the same."""

from __future__ import annotations

import numpy as np
import orjson

from onnxq.models.results import PredictionResult, float32_values


def classifier_result(probabilities: np.ndarray) -> PredictionResult:
    labels = probabilities.argmax(axis=1)
    as_lists = PredictionResult.classification(
        labels.tolist(), float32_values(probabilities), [0, 1, 2]
    )
    kept = PredictionResult("classification", {"labels": labels.tolist(),
                                               "probabilities": probabilities},
                            {"classes": [0, 1, 2]})  # fmt: skip
    assert kept == as_lists
    return kept


def test_an_array_column_answers_the_json_of_its_lists() -> None:
    probabilities = np.random.default_rng(1).random((5, 3)).astype(np.float32)
    kept = classifier_result(probabilities)
    assert isinstance(kept.columns["probabilities"], np.ndarray)  # not converted yet
    answer = kept.to_dict()
    assert answer["probabilities"] == float32_values(probabilities)
    assert orjson.dumps(answer)  # JSON-ready: lists, not arrays
    assert kept.probabilities == float32_values(probabilities)


def test_parts_of_an_array_column_join_into_the_whole() -> None:
    probabilities = np.random.default_rng(2).random((7, 3)).astype(np.float32)
    kept = classifier_result(probabilities)
    parts = [kept.part(0, 2), kept.part(2, 7)]
    assert parts[1].to_dict()["probabilities"] == float32_values(probabilities[2:])
    joined = PredictionResult.joined(parts)
    assert joined == kept
    assert isinstance(joined.columns["probabilities"], np.ndarray)  # still the model's array
    assert joined.columns["probabilities"].dtype == np.float32
