"""The Open Inference Protocol (KServe V2) REST routes: health, metadata, inference, errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import fakeredis
import numpy as np
import onnxruntime as ort
import pytest
import structlog
from flask.testing import FlaskClient

from gateway import create_app
from gateway.services import Services
from onnxq import __version__
from onnxq.settings import Settings
from tests.support.apps import empty_repository_client
from tests.support.prediction_log import prediction_lines, prediction_log_files

ModelOutputs = tuple[np.ndarray, np.ndarray]


def _infer_body(rows: Any, datatype: str = "FP32", shape: list[int] | None = None) -> dict:
    shape = [len(rows), len(rows[0])] if shape is None else shape
    return {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": rows}]}


def _infer(client: FlaskClient, name: str, body: Any, version: str | None = None):
    where = f"/v2/models/{name}" + (f"/versions/{version}" if version else "")
    return client.post(f"{where}/infer", json=body)


def _raw_infer(client: FlaskClient, name: str, text: str, content_type: str = "application/json"):
    return client.post(f"/v2/models/{name}/infer", data=text, content_type=content_type)


def _onnxruntime(services: Services, name: str, matrix: np.ndarray) -> ModelOutputs:
    """The same rows through a fresh single-threaded session on the model file itself."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    path = services.repository.get(name).directory / "model.onnx"
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {"input": matrix})
    return labels, probabilities


def _outputs(response: Any) -> dict[str, dict]:
    return {output["name"]: output for output in response.get_json()["outputs"]}


def _assert_v2_error(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str)
    return body["error"]


@pytest.fixture
def width(services: Services, demo_model_name: str) -> int:
    return len(services.repository.manifest(demo_model_name).features)


@pytest.fixture
def cancer_rows() -> list[list[float]]:
    """Real rows of the breast-cancer data set, so that probabilities vary row by row."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer().data
    return [[float(value) for value in data[index]] for index in (0, 19, 20, 100, 568)]


# ---- server metadata and health -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v2", "/v2/"])
def test_server_metadata_names_onnxq_its_version_and_extensions(
    client: FlaskClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.get_json() == {
        "name": "onnxq",
        "version": __version__,
        "extensions": ["binary_tensor_data", "model_configuration"],
    }


def test_server_live_is_200_with_live_true(client: FlaskClient) -> None:
    response = client.get("/v2/health/live")
    assert response.status_code == 200
    assert response.get_json() == {"live": True}


def test_server_ready_is_200_when_models_are_loaded_even_though_redis_is_unreachable(
    settings: Settings,
) -> None:
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()  # real, unreachable
    response = client.get("/v2/health/ready")
    assert response.status_code == 200
    assert response.get_json() == {"ready": True}


def test_server_ready_is_a_4xx_with_ready_false_until_a_model_appears_then_recovers(
    tmp_path: Path, model_dir: Path
) -> None:
    client, empty = empty_repository_client(tmp_path)
    response = client.get("/v2/health/ready")
    assert response.status_code == 400  # the spec: 200 means true, a 4xx means false
    assert response.get_json() == {"ready": False}

    empty.symlink_to(model_dir)  # the model arrives after start-up
    response = client.get("/v2/health/ready")
    assert response.status_code == 200
    assert response.get_json() == {"ready": True}


def test_health_probes_and_metadata_never_touch_redis(
    client: FlaskClient, redis_client: fakeredis.FakeRedis, demo_model_name: str
) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a V2 route talked to Redis")

    redis_client.execute_command = refuse  # type: ignore[method-assign]
    for path in ["/v2", "/v2/health/live", "/v2/health/ready", f"/v2/models/{demo_model_name}"]:
        assert client.get(path).status_code == 200


# ---- model metadata and model readiness -------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/versions/1"])
def test_model_metadata_maps_dtypes_and_marks_the_batch_axis_as_minus_one(
    client: FlaskClient, demo_model_name: str, width: int, suffix: str
) -> None:
    response = client.get(f"/v2/models/{demo_model_name}{suffix}")
    assert response.status_code == 200
    assert response.get_json() == {
        "name": demo_model_name,
        "versions": ["1"],
        "platform": "onnx_onnxv1",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, width]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ],
    }


@pytest.mark.parametrize("suffix", ["/ready", "/versions/1/ready"])
def test_model_ready_is_200_with_the_name_once_the_version_is_loaded(
    client: FlaskClient, demo_model_name: str, suffix: str
) -> None:
    response = client.get(f"/v2/models/{demo_model_name}{suffix}")
    assert response.status_code == 200
    assert response.get_json() == {"name": demo_model_name, "ready": True}


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("GET", "/ready"),
        ("POST", "/infer"),
        ("GET", "/versions/1"),
        ("GET", "/versions/1/ready"),
        ("POST", "/versions/1/infer"),
    ],
)
def test_an_unknown_model_gets_404_on_every_model_route(
    client: FlaskClient, rows: list[list[float]], method: str, suffix: str
) -> None:
    response = client.open(
        f"/v2/models/no-such-model{suffix}", method=method, json=_infer_body(rows)
    )
    assert "no-such-model" in _assert_v2_error(response, 404)


@pytest.mark.parametrize("version", ["2", "99", "0", "01", "v1", "latest"])
@pytest.mark.parametrize("suffix", ["", "/ready", "/infer"])
def test_an_unknown_version_gets_404_on_every_model_route(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]], version: str, suffix: str
) -> None:
    method = "POST" if suffix == "/infer" else "GET"
    response = client.open(
        f"/v2/models/{demo_model_name}/versions/{version}{suffix}",
        method=method,
        json=_infer_body(rows),
    )
    assert f"version {version}" in _assert_v2_error(response, 404).replace("'", "")


def test_a_version_that_cannot_be_loaded_is_not_ready_and_infer_gets_500_in_v2_style(
    tmp_path: Path, model_dir: Path, demo_model_name: str, rows: list[list[float]]
) -> None:
    broken = tmp_path / "models"
    shutil.copytree(model_dir, broken)
    with (broken / demo_model_name / "1" / "model.onnx").open("ab") as handle:
        handle.write(b"tampered")  # no longer matches the manifest's sha256
    settings = Settings(
        _env_file=None,
        model_dir=broken,
        redis_url="redis://127.0.0.1:1/0",
        prediction_log_dir=tmp_path / "predictions",
        allow_unauthenticated=True,
    )
    app = create_app({"TESTING": True, "SETTINGS": settings, "REDIS_CLIENT": fakeredis.FakeRedis()})
    client = app.test_client()
    assert client.get("/v2/health/ready").get_json() == {"ready": False}
    response = client.get(f"/v2/models/{demo_model_name}/ready")
    assert response.status_code == 400
    assert response.get_json() == {"name": demo_model_name, "ready": False}
    assert "sha256" in _assert_v2_error(_infer(client, demo_model_name, _infer_body(rows)), 500)


# ---- inference ------------------------------------------------------------------------------


def test_infer_returns_bit_for_bit_what_onnxruntime_returns_for_the_same_rows(
    client: FlaskClient, services: Services, demo_model_name: str, cancer_rows: list[list[float]]
) -> None:
    response = _infer(client, demo_model_name, _infer_body(cancer_rows))
    assert response.status_code == 200
    labels, probabilities = _onnxruntime(
        services, demo_model_name, np.asarray(cancer_rows, dtype=np.float32)
    )
    assert len(set(probabilities[:, 1].tolist())) > 1  # the rows do tell the model something
    outputs = _outputs(response)
    assert list(outputs) == ["label", "probabilities"]
    assert outputs["label"] == {
        "name": "label",
        "datatype": "INT64",
        "shape": [len(cancer_rows)],
        "data": labels.tolist(),
    }
    returned = outputs["probabilities"]
    assert returned["datatype"] == "FP32"
    assert returned["shape"] == list(probabilities.shape)
    assert len(returned["data"]) == probabilities.size  # flat, row-major
    as_float32 = np.asarray(returned["data"], dtype=np.float32).reshape(returned["shape"])
    assert as_float32.tobytes() == probabilities.tobytes()


def test_infer_names_the_model_and_version_and_echoes_the_request_id(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    response = _infer(client, demo_model_name, {"id": "my-request-42", **_infer_body(rows)})
    body = response.get_json()
    assert (body["model_name"], body["model_version"], body["id"]) == (
        demo_model_name,
        "1",
        "my-request-42",
    )
    assert set(body) == {"model_name", "model_version", "id", "outputs"}


def test_infer_without_an_id_answers_with_the_x_request_id(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    response = client.post(
        f"/v2/models/{demo_model_name}/infer",
        json=_infer_body(rows),
        headers={"X-Request-ID": "trace-7"},
    )
    assert response.get_json()["id"] == "trace-7"


def test_the_versioned_infer_route_serves_that_version(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    pinned = _infer(client, demo_model_name, _infer_body(rows), version="1")
    assert pinned.status_code == 200
    assert pinned.get_json()["model_version"] == "1"
    assert (
        pinned.get_json()["outputs"]
        == _infer(client, demo_model_name, _infer_body(rows)).get_json()["outputs"]
    )


def test_flat_and_nested_data_give_the_same_answer(
    client: FlaskClient, demo_model_name: str, cancer_rows: list[list[float]], width: int
) -> None:
    shape = [len(cancer_rows), width]
    flat = [value for row in cancer_rows for value in row]
    nested = _infer(client, demo_model_name, _infer_body(cancer_rows))
    flattened = _infer(client, demo_model_name, _infer_body(flat, shape=shape))
    assert nested.status_code == flattened.status_code == 200
    assert nested.get_json()["outputs"] == flattened.get_json()["outputs"]


@pytest.mark.parametrize(
    ("datatype", "convert"),
    [("FP64", float), ("INT64", lambda value: round(value)), ("BOOL", lambda value: value > 1)],
)
def test_fp64_int64_and_bool_inputs_are_cast_to_float32_and_served(
    client: FlaskClient,
    services: Services,
    demo_model_name: str,
    cancer_rows: list[list[float]],
    datatype: str,
    convert: Any,
) -> None:
    typed = [[convert(value) for value in row] for row in cancer_rows]
    response = _infer(client, demo_model_name, _infer_body(typed, datatype=datatype))
    assert response.status_code == 200, response.get_data(as_text=True)
    labels, probabilities = _onnxruntime(
        services, demo_model_name, np.asarray(typed, dtype=np.float32)
    )
    outputs = _outputs(response)
    assert outputs["label"]["data"] == labels.tolist()
    returned = np.asarray(outputs["probabilities"]["data"], dtype=np.float32)
    assert returned.tobytes() == probabilities.tobytes()


@pytest.mark.parametrize("wanted", [["probabilities"], ["label"], ["probabilities", "label"]])
def test_requested_outputs_are_the_only_ones_returned_in_the_order_asked(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]], wanted: list[str]
) -> None:
    body = {**_infer_body(rows), "outputs": [{"name": name} for name in wanted]}
    response = _infer(client, demo_model_name, body)
    assert response.status_code == 200
    assert [output["name"] for output in response.get_json()["outputs"]] == wanted


def test_an_unknown_requested_output_gets_400_naming_it(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    body = {**_infer_body(rows), "outputs": [{"name": "label"}, {"name": "logits"}]}
    assert "logits" in _assert_v2_error(_infer(client, demo_model_name, body), 400)


def test_infer_appends_one_prediction_log_line_per_row_with_source_v2(
    client: FlaskClient, services: Services, demo_model_name: str, rows: list[list[float]]
) -> None:
    response = _infer(client, demo_model_name, _infer_body(rows))
    assert len(prediction_log_files(services.settings.prediction_log_dir)) == 1
    lines = prediction_lines(services.settings.prediction_log_dir)
    assert [line["row"] for line in lines] == list(range(len(rows)))
    assert {line["source"] for line in lines} == {"v2"}
    assert {line["request_id"] for line in lines} == {response.headers["X-Request-ID"]}
    assert {(line["model"], line["version"]) for line in lines} == {(demo_model_name, 1)}
    assert [line["features"] for line in lines] == rows  # as sent, not float32-cast
    assert [line["label"] for line in lines] == _outputs(response)["label"]["data"]


def test_the_request_log_event_names_model_version_and_rows(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    with structlog.testing.capture_logs() as events:
        _infer(client, demo_model_name, _infer_body(rows))
    (event,) = [event for event in events if event["event"] == "request"]
    assert (event["model"], event["version"], event["rows"], event["status"]) == (
        demo_model_name,
        1,
        len(rows),
        200,
    )


# ---- bad requests: always {"error": "<message>"}, 400 (404 for what does not exist) -----------


def test_more_rows_than_the_sync_limit_get_400_pointing_to_the_v1_jobs_route(
    client: FlaskClient, services: Services, demo_model_name: str, width: int
) -> None:
    too_many = [[0.0] * width] * (services.settings.sync_max_rows + 1)
    message = _assert_v2_error(_infer(client, demo_model_name, _infer_body(too_many)), 400)
    assert f"/v1/models/{demo_model_name}/jobs" in message


@pytest.mark.parametrize(
    "shape", [[3], [3, 29], [3, 31], [1, 3, 30], [30, 3], [0, 30], [], [-3, 30], [3.0, 30]]
)
def test_a_shape_that_is_not_rows_by_features_gets_400(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]], shape: list[Any]
) -> None:
    flat = [value for row in rows for value in row]
    _assert_v2_error(_infer(client, demo_model_name, _infer_body(flat, shape=shape)), 400)


@pytest.mark.parametrize("datatype", ["fp32", "FLOAT32", "float32", "BYTES", "BF16", ""])
def test_a_datatype_that_is_not_a_number_type_gets_400(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]], datatype: str
) -> None:
    response = _infer(client, demo_model_name, _infer_body(rows, datatype=datatype))
    assert "datatype" in _assert_v2_error(response, 400)


@pytest.mark.parametrize("datatype", ["FP16", "FP64", "INT32", "UINT8", "INT8"])
def test_every_numeric_datatype_is_converted_to_the_models_float32(
    client: FlaskClient, demo_model_name: str, datatype: str
) -> None:
    rows = [[float(1 + (i + j) % 5) for j in range(30)] for i in range(2)]
    if datatype not in ("FP16", "FP64"):
        rows = [[int(value) for value in row] for row in rows]

    response = _infer(client, demo_model_name, _infer_body(rows, datatype=datatype))

    assert response.status_code == 200, response.get_json()
    reference = _infer(client, demo_model_name, _infer_body(rows)).get_json()
    assert response.get_json()["outputs"] == reference["outputs"]


@pytest.mark.parametrize("name", ["inputs", "INPUT", "float_input"])
def test_an_unknown_input_name_gets_400_naming_the_expected_one(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]], name: str
) -> None:
    body = _infer_body(rows)
    body["inputs"][0]["name"] = name
    message = _assert_v2_error(_infer(client, demo_model_name, body), 400)
    assert "'input'" in message


def test_two_inputs_get_400(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    body = _infer_body(rows)
    body["inputs"] = body["inputs"] * 2
    _assert_v2_error(_infer(client, demo_model_name, body), 400)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_a_non_finite_value_sent_as_a_raw_json_literal_gets_400_naming_its_feature(
    client: FlaskClient, demo_model_name: str, width: int, literal: str, datatype: str
) -> None:
    data = ", ".join(["1.5"] * (2 * width - 1) + [literal])
    text = (
        f'{{"inputs": [{{"name": "input", "shape": [2, {width}], '
        f'"datatype": "{datatype}", "data": [{data}]}}]}}'
    )
    message = _assert_v2_error(_raw_infer(client, demo_model_name, text), 400)
    assert "row 1" in message
    assert "worst fractal dimension" in message


@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        ("FP32", 1e39),  # finite, but beyond float32
        ("FP64", -1e300),
        ("FP32", True),
        ("FP32", "1.5"),
        ("FP32", None),
        ("FP32", {"value": 1}),
        ("INT64", 1.5),
        ("INT64", 2**63),
        ("INT64", True),
        ("BOOL", 1),
        ("BOOL", "true"),
    ],
)
def test_a_value_the_datatype_does_not_allow_gets_400_naming_its_feature(
    client: FlaskClient, demo_model_name: str, width: int, datatype: str, value: Any
) -> None:
    good = {"FP32": 1.0, "FP64": 1.0, "INT64": 1, "BOOL": False}[datatype]
    data = [good] * width
    data[2] = value
    response = _infer(client, demo_model_name, _infer_body([data], datatype=datatype))
    assert "perimeter" in _assert_v2_error(response, 400)  # feature 2 is 'mean perimeter'


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(lambda rows: [v for row in rows for v in row][:-1], id="one-element-short"),
        pytest.param(lambda rows: [v for row in rows for v in row] + [1.0], id="one-element-over"),
        pytest.param(lambda rows: [row[:-1] for row in rows], id="short-nested-rows"),
        pytest.param(lambda rows: rows[:-1], id="missing-nested-row"),
        pytest.param(lambda rows: [[[v] for v in row] for row in rows], id="nested-too-deep"),
        pytest.param(lambda rows: [rows[0], *[v for row in rows[1:] for v in row]], id="mixed"),
    ],
)
def test_data_that_does_not_match_the_shape_gets_400(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]], width: int, data: Any
) -> None:
    body = _infer_body(data(rows), shape=[len(rows), width])
    _assert_v2_error(_infer(client, demo_model_name, body), 400)


@pytest.mark.parametrize(
    ("text", "content_type"),
    [
        ('{"inputs": [', "application/json"),
        ("", "application/json"),
        ("inputs=1", "application/x-www-form-urlencoded"),
        ('{"inputs": []}', "text/plain"),
        ("[" * 100_000, "application/json"),
    ],
    ids=["truncated", "empty", "form", "text-plain", "nested-too-deeply"],
)
def test_a_body_that_is_not_json_gets_400(
    client: FlaskClient, demo_model_name: str, text: str, content_type: str
) -> None:
    _assert_v2_error(_raw_infer(client, demo_model_name, text, content_type), 400)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "inputs",
        {},
        {"inputs": []},
        {"inputs": "input"},
        {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32"}]},
        {"inputs": [{"name": "input", "shape": "1,30", "datatype": "FP32", "data": []}]},
        {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": 1.0}]},
        {"inputs": [{"name": 7, "shape": [1, 30], "datatype": "FP32", "data": []}]},
        {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [], "x": 1}]},
        {"id": 42, "inputs": []},
        {"parameters": {"nested": {"a": 1}}, "inputs": []},
        {"outputs": [{"id": "label"}], "inputs": []},
        {"instances": [[1.0] * 30]},
    ],
)
def test_a_body_that_is_not_an_inference_request_gets_400_never_500(
    client: FlaskClient, demo_model_name: str, body: Any
) -> None:
    _assert_v2_error(_infer(client, demo_model_name, body), 400)


def test_request_and_input_parameters_are_accepted(
    client: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    body = _infer_body(rows)
    body["parameters"] = {"priority": 1, "note": "x", "debug": False, "ratio": 0.5}
    body["inputs"][0]["parameters"] = {"content_type": "np"}
    body["outputs"] = [{"name": "label", "parameters": {"binary_data": False}}]
    assert _infer(client, demo_model_name, body).status_code == 200


def test_an_unknown_v2_path_and_a_wrong_method_get_v2_style_errors(
    client: FlaskClient, demo_model_name: str
) -> None:
    _assert_v2_error(client.get(f"/v2/models/{demo_model_name}/explain"), 404)
    response = client.get(f"/v2/models/{demo_model_name}/infer")
    _assert_v2_error(response, 405)
    assert "POST" in response.headers["Allow"]


def test_v1_errors_keep_their_own_format(client: FlaskClient, rows: list[list[float]]) -> None:
    response = client.post("/v1/models/no-such-model/predict", json={"instances": rows})
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "model_not_found"
    assert client.get("/v1/no-such-route").get_json()["error"]["type"] == "not_found"


# ---- API keys (gateway/auth.py) guard /v2 too, except the health probes -----------------------


@pytest.fixture
def secured(settings: Settings) -> FlaskClient:
    keyed = settings.model_copy(
        update={
            "api_keys": Settings(_env_file=None, api_keys="key-one").api_keys,
            "allow_unauthenticated": False,
        }
    )
    app = create_app({"TESTING": True, "SETTINGS": keyed, "REDIS_CLIENT": fakeredis.FakeRedis()})
    return app.test_client()


def test_v2_model_routes_without_a_key_get_401_in_v2_style(
    secured: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    for response in (
        secured.get("/v2"),
        secured.get(f"/v2/models/{demo_model_name}"),
        secured.get(f"/v2/models/{demo_model_name}/ready"),
        secured.post(f"/v2/models/{demo_model_name}/infer", json=_infer_body(rows)),
        secured.post(
            f"/v2/models/{demo_model_name}/infer",
            json=_infer_body(rows),
            headers={"Authorization": "Bearer wrong"},
        ),
    ):
        _assert_v2_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_v2_health_probes_need_no_key_and_a_valid_key_opens_infer(
    secured: FlaskClient, demo_model_name: str, rows: list[list[float]]
) -> None:
    assert secured.get("/v2/health/live").status_code == 200
    assert secured.get("/v2/health/ready").status_code == 200
    response = secured.post(
        f"/v2/models/{demo_model_name}/infer",
        json=_infer_body(rows),
        headers={"X-API-Key": "key-one"},
    )
    assert response.status_code == 200
