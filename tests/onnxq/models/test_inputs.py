"""parse_predict_request: a JSON body becomes the float32 input matrix, or says what is wrong;
and the float32 and row-limit checks that /v1 and /v2 share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from onnxq.errors import InvalidInput, TooManyRows
from onnxq.models.inputs import (
    FLOAT32_MAX,
    Float32Problem,
    check_row_limit,
    fits_float32,
    float32_problem,
    parse_predict_request,
)
from onnxq.models.manifest import FeatureSpec, Manifest, Parity, TensorSpec

FEATURES = ["mean radius", "mean texture", "mean smoothness"]


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest(
        name="tiny",
        version=1,
        sha256="0" * 64,
        size_bytes=1,
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        features=[FeatureSpec(name=name) for name in FEATURES],
        inputs=[TensorSpec(name="input", dtype="float32", shape=[None, len(FEATURES)])],
        outputs=[
            TensorSpec(name="label", dtype="int64", shape=[None]),
            TensorSpec(name="probabilities", dtype="float32", shape=[None, 2]),
        ],
        label_output="label",
        probability_output="probabilities",
        class_labels=[0, 1],
        parity=Parity(max_abs_diff=0.0, tolerance=1e-5, rows=1, compared="probabilities"),
    )


def refusal(body: Any, manifest: Manifest) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_predict_request(body, manifest)
    return caught.value


def test_valid_rows_become_a_float32_matrix_of_rows_by_features(manifest: Manifest) -> None:
    body = {"instances": [[1, 2.5, -3.0], [0.0, 1e-3, 7]]}

    request, matrix = parse_predict_request(body, manifest)

    assert matrix.dtype == np.float32
    assert matrix.shape == (2, 3)
    np.testing.assert_array_equal(
        matrix, np.array([[1, 2.5, -3.0], [0.0, 1e-3, 7]], dtype=np.float32)
    )
    assert request.instances == [[1.0, 2.5, -3.0], [0.0, 1e-3, 7.0]]


def test_an_empty_instances_list_is_refused(manifest: Manifest) -> None:
    error = refusal({"instances": []}, manifest)

    assert error.status_code == 422
    assert [detail["loc"] for detail in error.details] == [["instances"]]
    assert "row" not in error.details[0]


def test_a_missing_instances_key_is_refused(manifest: Manifest) -> None:
    error = refusal({}, manifest)

    assert [detail["loc"] for detail in error.details] == [["instances"]]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_value_is_refused_with_its_row_and_feature(
    manifest: Manifest, value: float
) -> None:
    error = refusal({"instances": [[1.0, 2.0, 3.0], [1.0, value, 3.0]]}, manifest)

    assert len(error.details) == 1
    detail = error.details[0]
    assert detail["row"] == 1
    assert detail["feature"] == "mean texture"
    assert detail["loc"] == ["instances", 1, 1]


@pytest.mark.parametrize("value", ["1.5", True, False, None, [1.0]])
def test_a_value_that_is_not_a_number_is_refused_not_coerced(
    manifest: Manifest, value: Any
) -> None:
    error = refusal({"instances": [[value, 2.0, 3.0]]}, manifest)

    assert error.details
    assert all(detail["row"] == 0 for detail in error.details)
    assert all(detail["feature"] == "mean radius" for detail in error.details)


def test_every_bad_value_is_reported_not_only_the_first(manifest: Manifest) -> None:
    body = {"instances": [[1.0, "x", 3.0], [1.0, 2.0, 3.0], [True, 2.0, float("nan")]]}

    error = refusal(body, manifest)

    assert sorted((detail["row"], detail["feature"]) for detail in error.details) == [
        (0, "mean texture"),
        (2, "mean radius"),
        (2, "mean smoothness"),
    ]


def test_a_row_of_the_wrong_length_is_reported_with_its_index(manifest: Manifest) -> None:
    body = {"instances": [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0], [1.0, 2.0, 3.0, 4.0]]}

    error = refusal(body, manifest)

    assert [detail["row"] for detail in error.details] == [2, 3]
    assert all("feature" not in detail for detail in error.details)
    assert "expected 3 values, got 2" in error.details[0]["message"]


@pytest.mark.parametrize("value", [3.5e38, -1e39, 1e300])
def test_a_value_beyond_float32_range_is_reported_with_row_and_feature(
    manifest: Manifest, value: float
) -> None:
    error = refusal({"instances": [[1.0, 2.0, 3.0], [1.0, 2.0, value]]}, manifest)

    assert error.details == [
        {
            "loc": ["instances", 1, 2],
            "row": 1,
            "feature": "mean smoothness",
            "message": "value is outside the float32 range",
        }
    ]


def test_the_largest_float32_value_is_accepted(manifest: Manifest) -> None:
    largest = float(np.finfo(np.float32).max)

    _, matrix = parse_predict_request({"instances": [[largest, -largest, 0.0]]}, manifest)

    assert np.all(np.isfinite(matrix))
    assert matrix[0, 0] == np.float32(largest)


def test_an_extra_top_level_key_is_refused(manifest: Manifest) -> None:
    error = refusal({"instances": [[1.0, 2.0, 3.0]], "model": "tiny"}, manifest)

    assert [detail["loc"] for detail in error.details] == [["model"]]


def test_a_body_that_is_not_an_object_is_refused(manifest: Manifest) -> None:
    error = refusal([[1.0, 2.0, 3.0]], manifest)

    assert error.details


def test_the_error_renders_its_details_for_the_response_body(manifest: Manifest) -> None:
    error = refusal({"instances": [[1.0, float("nan"), 3.0]]}, manifest)

    body = error.to_dict()

    assert body["type"] == "invalid_input"
    assert body["details"][0]["row"] == 0
    assert body["details"][0]["feature"] == "mean texture"


# ---- the checks /v1 and /v2 share -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0.0, None),
        (-7, None),
        (True, None),  # a BOOL tensor's element: 1.0 as float32
        (FLOAT32_MAX, None),
        (-FLOAT32_MAX, None),
        (float(np.nextafter(FLOAT32_MAX, np.inf)), Float32Problem.OUT_OF_RANGE),
        (10**400, Float32Problem.OUT_OF_RANGE),  # beyond float64 too: compared exactly
        (float("nan"), Float32Problem.NOT_FINITE),
        (float("-inf"), Float32Problem.NOT_FINITE),
    ],
)
def test_the_float32_check_names_what_a_model_input_cannot_hold(
    value: float, problem: Float32Problem | None
) -> None:
    assert float32_problem(value) is problem
    if not isinstance(value, int) or abs(value) < 2**1000:
        assert fits_float32(np.array([0.0, float(value)])) is (problem is None)


def test_the_row_limit_names_the_jobs_route_for_a_synchronous_call_and_splitting_for_a_job() -> (
    None
):
    check_row_limit(5, 5, "/v1/models/m/jobs")
    check_row_limit(5, 5)
    with pytest.raises(TooManyRows) as sync:
        check_row_limit(6, 5, "/v1/models/m/jobs")
    assert sync.value.message == (
        "6 rows is more than the synchronous limit of 5; submit them as a job with POST "
        "/v1/models/m/jobs"
    )
    assert sync.value.details == [{"limit": 5, "jobs_url": "/v1/models/m/jobs"}]
    with pytest.raises(TooManyRows) as job:
        check_row_limit(9, 8)
    assert job.value.message == "9 rows is more than one job may carry (8); split the batch"
    assert job.value.details == [{"limit": 8}]
