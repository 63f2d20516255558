"""A batch's log lines at once are byte for byte the lines orjson writes one by one."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest

from onnxq.telemetry.log_line_encoding import encode_lines, row_values


def one_by_one(rows: int, matrix: np.ndarray | None, columns: list[tuple[str, list[Any]]]) -> bytes:
    lines = []
    for index in range(rows):
        line: dict[str, Any] = {
            "ts": "2026-12-02T07:00:00.000Z",
            "source": "v2",
            "request_id": 'a"b',
            "job_id": None,
            "model": "m",
            "version": 3,
            "row": index,
            "features": None if matrix is None else matrix[index],
        }
        for key, values in columns:
            line[key] = values[index]
        line["latency_ms"] = round(1.23456, 3)
        lines.append(
            orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)
        )
    return b"".join(lines)


def at_once(rows: int, matrix: np.ndarray | None, columns: list[tuple[str, list[Any]]]) -> bytes:
    return encode_lines(
        timestamp="2026-12-02T07:00:00.000Z",
        source="v2",
        request_id='a"b',
        job_id=None,
        model="m",
        version=3,
        rows=rows,
        matrix=matrix,
        columns=columns,
        latency_ms=1.23456,
    )


@pytest.mark.parametrize("rows", [1, 2, 257])
def test_classifier_lines_match_orjson_line_by_line(rows: int) -> None:
    rng = np.random.default_rng(rows)
    matrix = (rng.normal(size=(rows, 5)) * 10.0 ** rng.integers(-8, 8, (rows, 5))).astype(
        np.float32
    )
    matrix[0, 1] = math.nan  # a missing value: null
    probabilities = rng.random((rows, 3)).astype(np.float32)
    columns = [
        ("label", rng.integers(0, 3, rows).tolist()),
        (
            "probabilities",
            orjson.loads(orjson.dumps(probabilities, option=orjson.OPT_SERIALIZE_NUMPY)),
        ),
    ]
    assert at_once(rows, matrix, columns) == one_by_one(rows, matrix, columns)


@pytest.mark.parametrize(
    "values",
    [
        ["setosa", "virginica", "a,b", 'q"uote'],
        [1.5, -2e-30, 3.0, 7],
        [[1.0, None], [2.5, 3.0], [4.0, -1e20], [0.0, 0.0]],
        [{"logits": [[1.0, 2.0]], "total": [3.0]}] * 4,
        [[[1.0], [2.0]], [[3.0], [4.0]], [[5.0], [6.0]], [[7.0], [8.0]]],
        [True, False, True, True],
    ],
    ids=["strings", "numbers", "rows", "tensor-outputs", "nested", "bools"],
)
def test_every_kind_of_column_matches_orjson(values: list[Any]) -> None:
    assert row_values(values) == [orjson.dumps(v) for v in values]
    assert at_once(4, None, [("x", values)]) == one_by_one(4, None, [("x", values)])


@pytest.mark.parametrize("rows", [1, 3, 257])
@pytest.mark.parametrize("shape", ["probabilities", "regression"])
def test_float32_arrays_log_the_values_of_their_json_answer(rows: int, shape: str) -> None:
    """A result's float32 column stays an array (onnxq/models/results.py) and is logged as such:
    the lines are orjson's, line by line, and read back as the answer's JSON values."""
    rng = np.random.default_rng(rows)
    wide = (rng.normal(size=(rows, 3)) * 10.0 ** rng.integers(-20, 20, (rows, 3))).astype(
        np.float32
    )
    array = wide if shape == "probabilities" else np.ascontiguousarray(wide[:, 0])
    as_json = orjson.loads(orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY))
    lines = at_once(rows, None, [("x", array)])
    assert lines == one_by_one(rows, None, [("x", array)])
    assert [orjson.loads(line)["x"] for line in lines.splitlines()] == as_json
