from __future__ import annotations

import numpy as np
import onnxruntime as ort
from flask.testing import FlaskClient

from gateway.services import Services
from tests.support.prediction_log import prediction_lines, prediction_log_files


def _post(client: FlaskClient, name: str, body: object):
    return client.post(f"/v1/models/{name}/predict", json=body)


def test_predict_returns_what_onnxruntime_returns_for_the_same_rows(
    client: FlaskClient, services: Services, demo_model_name: str, rows: list[list[float]]
) -> None:
    response = _post(client, demo_model_name, {"instances": rows})
    assert response.status_code == 200
    body = response.get_json()

    model = services.repository.get(demo_model_name)
    session = ort.InferenceSession(str(model.directory / "model.onnx"))
    labels, probabilities = session.run(None, {"input": np.asarray(rows, dtype=np.float32)})
    assert body["labels"] == labels.tolist()
    # Exact: the JSON decimals are the shortest that round-trip each float32.
    np.testing.assert_array_equal(np.float32(body["probabilities"]), probabilities)
    assert body["model"] == demo_model_name
    assert body["version"] == model.version
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_predict_appends_one_log_line_per_row_with_the_request_id(
    client: FlaskClient, services: Services, demo_model_name: str, rows: list[list[float]]
) -> None:
    response = _post(client, demo_model_name, {"instances": rows})
    assert len(prediction_log_files(services.settings.prediction_log_dir)) == 1
    lines = prediction_lines(services.settings.prediction_log_dir)
    assert [line["row"] for line in lines] == [0, 1, 2]
    assert {line["request_id"] for line in lines} == {response.headers["X-Request-ID"]}
    assert {line["source"] for line in lines} == {"sync"}
    assert [line["features"] for line in lines] == rows  # as sent, not float32-cast


def test_more_rows_than_the_sync_limit_get_413_pointing_to_the_jobs_route(
    client: FlaskClient, services: Services, demo_model_name: str
) -> None:
    width = len(services.repository.manifest(demo_model_name).features)
    too_many = [[0.0] * width] * (services.settings.sync_max_rows + 1)
    response = _post(client, demo_model_name, {"instances": too_many})
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["type"] == "too_many_rows"
    assert f"/v1/models/{demo_model_name}/jobs" in error["message"]


def test_an_unknown_model_gets_404(client: FlaskClient, rows: list[list[float]]) -> None:
    response = _post(client, "no-such-model", {"instances": rows})
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "model_not_found"


def test_a_caller_request_id_is_echoed_back(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    response = client.post(
        f"/v1/models/{demo_model_name}/predict",
        json={"instances": rows},
        headers={"X-Request-ID": "trace-42"},
    )
    assert response.headers["X-Request-ID"] == "trace-42"
    assert response.get_json()["request_id"] == "trace-42"
