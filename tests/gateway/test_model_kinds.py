"""Regressors, string labels, classifiers without probabilities, nullable features and tensor
models through /v1 predict, jobs and V2 infer (in-process app; the worker runs its jobs)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.services import Services
from tests.support.jobs import take_messages
from tests.support.model_kinds import IRIS, NULLABLE, REGRESSOR, SVC, TENSOR, tensor_rows
from tests.support.prediction_log import prediction_lines
from worker.runner import JobRunner


@pytest.fixture
def app(kinds_app: Flask) -> Flask:
    return kinds_app


def predict(client: FlaskClient, name: str, instances: list[Any]) -> Any:
    return client.post(f"/v1/models/{name}/predict", json={"instances": instances})


def infer(client: FlaskClient, name: str, inputs: list[dict[str, Any]]) -> Any:
    return client.post(f"/v2/models/{name}/infer", json={"inputs": inputs})


def run_job(client: FlaskClient, services: Services, name: str, instances: list[Any]) -> dict:
    submitted = client.post(f"/v1/models/{name}/jobs", json={"instances": instances})
    assert submitted.status_code == 202, submitted.get_json()
    job_id = submitted.get_json()["job_id"]
    [message] = take_messages(services.queue.celery, services.settings.queue_name, job_id)
    JobRunner(services.repository, services.jobs, services.prediction_log).run([message])
    return client.get(f"/v1/jobs/{job_id}").get_json()


def onnx_outputs(services: Services, name: str, feeds: dict[str, np.ndarray]) -> list[Any]:
    import onnxruntime as ort

    directory = services.repository.paths(name, 1).model
    return ort.InferenceSession(str(directory)).run(None, feeds)


ROWS = [[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0]]


def test_a_regressor_answers_predictions_per_target_and_no_classes(
    client: FlaskClient, services: Services
) -> None:
    body = predict(client, REGRESSOR, ROWS).get_json()

    [expected] = onnx_outputs(services, REGRESSOR, {"input": np.float32(ROWS)})
    assert set(body) == {"model", "version", "request_id", "predictions", "targets"}
    assert body["targets"] == ["a", "b"]
    np.testing.assert_array_equal(np.float32(body["predictions"]), expected)
    described = client.get(f"/v1/models/{REGRESSOR}").get_json()
    assert (described["task"], described["targets"], described["classes"]) == (
        "regression",
        ["a", "b"],
        [],
    )


def test_a_regressors_job_and_v2_answer_the_same_predictions(
    client: FlaskClient, services: Services
) -> None:
    sync = predict(client, REGRESSOR, ROWS).get_json()
    job = run_job(client, services, REGRESSOR, ROWS)
    v2 = infer(
        client, REGRESSOR, [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]
    )

    assert job["status"] == "succeeded"
    assert job["result"]["predictions"] == sync["predictions"]
    [output] = v2.get_json()["outputs"]
    assert (output["name"], output["shape"], output["datatype"]) == ("predictions", [2, 2], "FP32")
    assert output["data"] == [value for row in sync["predictions"] for value in row]
    logged = [line for line in prediction_lines(services.settings.prediction_log_dir)]
    assert {tuple(line["prediction"]) for line in logged} == {
        tuple(row) for row in sync["predictions"]
    }


def test_a_string_label_classifier_answers_its_labels(
    client: FlaskClient, services: Services
) -> None:
    body = predict(client, IRIS, ROWS).get_json()
    v2 = infer(client, IRIS, [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": ROWS}])

    labels, probabilities = onnx_outputs(services, IRIS, {"input": np.float32(ROWS)})
    assert body["labels"] == labels.tolist()
    assert all(isinstance(label, str) for label in body["labels"])
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(np.float32(body["probabilities"]), probabilities)
    label_tensor = v2.get_json()["outputs"][0]
    assert (label_tensor["datatype"], label_tensor["data"]) == ("BYTES", body["labels"])


def test_a_classifier_without_probabilities_answers_labels_and_v2_its_scores(
    client: FlaskClient,
) -> None:
    body = predict(client, SVC, ROWS).get_json()
    v2 = infer(client, SVC, [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": ROWS}])

    assert set(body) == {"model", "version", "request_id", "labels", "classes"}
    assert [o["name"] for o in v2.get_json()["outputs"]] == ["label", "scores"]


@pytest.mark.parametrize(
    "row",
    [[0.5, None, None, 1.0], {"f0": 0.5, "f1": None, "f2": None, "f3": 1.0}],
    ids=["array", "object"],
)
def test_null_in_a_nullable_feature_is_sent_to_the_model_as_nan_and_logged_missing(
    client: FlaskClient, services: Services, row: Any
) -> None:
    response = predict(client, NULLABLE, [row])

    assert response.status_code == 200, response.get_json()
    nan_row = np.float32([[0.5, math.nan, math.nan, 1.0]])
    [expected] = onnx_outputs(services, NULLABLE, {"input": nan_row})
    assert response.get_json()["predictions"] == [pytest.approx(float(expected.ravel()[0]))]
    [line] = prediction_lines(services.settings.prediction_log_dir)
    assert line["features"] == [0.5, None, None, 1.0]


def test_a_nan_literal_in_a_nullable_feature_is_a_missing_value_too(client: FlaskClient) -> None:
    text = '{"instances": [[0.5, NaN, 1.0, 1.0]]}'
    response = client.post(
        f"/v1/models/{NULLABLE}/predict", data=text, content_type="application/json"
    )
    assert response.status_code == 200, response.get_json()


def test_null_outside_the_nullable_features_is_refused_with_its_feature(
    client: FlaskClient,
) -> None:
    response = predict(client, NULLABLE, [[None, 1.0, 1.0, 1.0]])

    assert response.status_code == 422
    [detail] = response.get_json()["error"]["details"]
    assert (detail["feature"], detail["row"]) == ("f0", 0)
    assert "null" in detail["message"]


def test_v2_takes_null_in_a_nullable_feature(client: FlaskClient) -> None:
    data = [0.5, None, 1.0, 1.0]
    response = infer(
        client, NULLABLE, [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": data}]
    )
    assert response.status_code == 200, response.get_json()
    data[0] = None
    refused = infer(
        client, NULLABLE, [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": data}]
    )
    assert refused.status_code == 400
    assert "feature 'f0'" in refused.get_json()["error"]


def tensor_feeds(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {
        "image": np.float32([row["image"] for row in rows]),
        "ids": np.int64([row["ids"] for row in rows]),
    }


def test_a_tensor_model_answers_its_outputs_by_name_on_v1_and_in_jobs(
    client: FlaskClient, services: Services
) -> None:
    rows = tensor_rows(3)
    logits, total = onnx_outputs(services, TENSOR, tensor_feeds(rows))

    body = predict(client, TENSOR, rows).get_json()
    job = run_job(client, services, TENSOR, rows)

    assert set(body) == {"model", "version", "request_id", "outputs"}
    np.testing.assert_array_equal(np.float32(body["outputs"]["logits"]), logits)
    np.testing.assert_array_equal(np.float32(body["outputs"]["total"]), total)
    assert job["status"] == "succeeded", job
    assert job["result"]["outputs"] == body["outputs"]
    lines = prediction_lines(services.settings.prediction_log_dir)
    assert len(lines) == 6 and all(line["features"] is None for line in lines)
    assert lines[0]["outputs"] == {
        "logits": body["outputs"]["logits"][0],
        "total": body["outputs"]["total"][0],
    }


def test_a_tensor_model_answers_v2_with_several_inputs_and_outputs(
    client: FlaskClient, services: Services
) -> None:
    rows = tensor_rows(2, seed=3)
    feeds = tensor_feeds(rows)
    logits, total = onnx_outputs(services, TENSOR, feeds)

    response = infer(
        client,
        TENSOR,
        [
            {
                "name": "ids",
                "shape": [2, 3],
                "datatype": "INT64",
                "data": feeds["ids"].ravel().tolist(),
            },
            {
                "name": "image",
                "shape": [2, 1, 4, 4],
                "datatype": "FP32",
                "data": feeds["image"].tolist(),
            },
        ],
    )

    assert response.status_code == 200, response.get_json()
    outputs = {o["name"]: o for o in response.get_json()["outputs"]}
    assert outputs["logits"]["shape"] == [2, 3] and outputs["total"]["shape"] == [2, 1]
    np.testing.assert_array_equal(np.float32(outputs["logits"]["data"]), logits.ravel())
    np.testing.assert_array_equal(np.float32(outputs["total"]["data"]), total.ravel())
    metadata = client.get(f"/v2/models/{TENSOR}").get_json()
    assert metadata["inputs"][0] == {"name": "image", "datatype": "FP32", "shape": [-1, 1, 4, 4]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image": [[0.0] * 4] * 4}, "input has shape [4, 4]; expected [1, 4, 4]"),
        ({"ids": [1.5, 2, 3]}, "must hold integers only"),
        ({"ids": None}, "input is null; expected values of shape [3]"),
        ({"extra": 1}, "unknown input"),
    ],
    ids=["shape", "fraction", "null", "unknown"],
)
def test_a_bad_tensor_row_is_refused_naming_its_row_and_input(
    client: FlaskClient, change: dict[str, Any], message: str
) -> None:
    rows = tensor_rows(2)
    rows[1] = {**rows[1], **change}

    for route in ("predict", "jobs"):
        response = client.post(f"/v1/models/{TENSOR}/{route}", json={"instances": rows})
        assert response.status_code == 422, response.get_json()
        [detail] = response.get_json()["error"]["details"]
        assert detail["row"] == 1 and message in detail["message"]


def test_a_tensor_model_row_missing_an_input_is_refused(client: FlaskClient) -> None:
    response = predict(client, TENSOR, [{"image": tensor_rows(1)[0]["image"]}])
    assert response.status_code == 422
    [detail] = response.get_json()["error"]["details"]
    assert detail["loc"] == ["instances", 0, "ids"] and detail["message"] == "missing input"


def test_v2_refuses_a_tensor_input_of_another_datatype_or_shape(client: FlaskClient) -> None:
    feeds = tensor_feeds(tensor_rows(1))
    image = {
        "name": "image",
        "shape": [1, 1, 4, 4],
        "datatype": "FP32",
        "data": feeds["image"].ravel().tolist(),
    }
    ids = {"name": "ids", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}

    wrong_type = infer(client, TENSOR, [image, ids])
    wrong_shape = infer(
        client,
        TENSOR,
        [{**image, "shape": [1, 16]}, {**ids, "datatype": "INT64", "data": [1, 2, 3]}],
    )
    missing = infer(client, TENSOR, [image])

    assert (
        wrong_type.status_code == 400 and "the model takes INT64" in wrong_type.get_json()["error"]
    )
    assert (
        wrong_shape.status_code == 400
        and "expected [1, 1, 4, 4]" in wrong_shape.get_json()["error"]
    )
    assert (
        missing.status_code == 400
        and "takes the inputs ['image', 'ids']" in missing.get_json()["error"]
    )
