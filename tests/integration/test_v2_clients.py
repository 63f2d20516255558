"""NVIDIA's tritonclient (HTTP and gRPC) and curl against a real gunicorn gateway and gRPC
service, with their defaults: binary tensor data on, no Content-Type, API keys in headers."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from onnxq.models.repository import ModelRepository
from tests.integration.conftest import Stack, running_stack
from tests.support.model_kinds import build_model_kinds
from tests.support.prediction_log import prediction_lines

pytestmark = pytest.mark.integration

KEY = "interop-test-key"


def http_headers() -> dict[str, str]:
    # A new dict each call: tritonclient.http writes Inference-Header-Content-Length into the
    # headers dict it is given, and a reused one would carry it into the next request.
    return {"Authorization": f"Bearer {KEY}"}


GRPC_HEADERS = {"authorization": f"Bearer {KEY}"}
MODEL = "breast-cancer"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, redis_binary: str
) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("v2-clients")
    models = directory / "models"
    shutil.copytree(model_dir, models)
    build_model_kinds(ModelRepository(models))  # iris: string labels, as BYTES
    env = {"ONNXQ_API_KEYS": KEY, "ONNXQ_ALLOW_UNAUTHENTICATED": "false"}
    with running_stack(
        directory, models, redis_binary, extra_env=env, with_worker=False, with_grpc=True
    ) as running:
        yield running


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer().data[:7].astype(np.float32)


def onnxruntime_outputs(stack: Stack, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(str(stack.model_dir / MODEL / "1" / "model.onnx"))
    labels, probabilities = session.run(["label", "probabilities"], {"input": rows})
    return labels, probabilities


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(stack.base_url.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc(stack: Stack) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(stack.grpc_target)
    yield client
    client.close()


def http_input(rows: np.ndarray, binary: bool = True) -> httpclient.InferInput:
    tensor = httpclient.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


def grpc_input(rows: np.ndarray) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    return tensor


def test_http_health_metadata_and_config_with_tritonclient(
    http: httpclient.InferenceServerClient,
) -> None:
    assert http.is_server_live() and http.is_server_ready()
    assert http.is_model_ready(MODEL, headers=http_headers())
    metadata = http.get_model_metadata(MODEL, headers=http_headers())
    config = http.get_model_config(MODEL, headers=http_headers())
    index = http.get_model_repository_index(headers=http_headers())

    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
    assert config["input"][0]["dims"] == [30] and config["max_batch_size"] > 0
    assert {"name": MODEL, "version": "1", "state": "READY"} in index
    assert "binary_tensor_data" in http.get_server_metadata(headers=http_headers())["extensions"]
    with pytest.raises(InferenceServerException, match="GET /metrics"):
        http.get_inference_statistics(MODEL, headers=http_headers())


def test_http_infer_with_the_clients_defaults_answers_as_onnxruntime(
    stack: Stack, http: httpclient.InferenceServerClient, rows: np.ndarray
) -> None:
    result = http.infer(MODEL, [http_input(rows)], headers=http_headers(), request_id="tc-http")

    labels, probabilities = onnxruntime_outputs(stack, rows)
    np.testing.assert_array_equal(result.as_numpy("label"), labels)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), probabilities)
    response = result.get_response()
    assert response["id"] == "tc-http"
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
    logged = [line for line in prediction_lines(stack.prediction_log_dir) if line["source"] == "v2"]
    assert len([line for line in logged if line["row"] < len(rows)]) >= len(rows)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_requested_outputs_by_name_and_a_pinned_version(
    stack: Stack, http: httpclient.InferenceServerClient, rows: np.ndarray, binary: bool
) -> None:
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary)]

    result = http.infer(
        MODEL,
        [http_input(rows, binary)],
        model_version="1",
        outputs=outputs,
        headers=http_headers(),
    )

    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("label") is None
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), onnxruntime_outputs(stack, rows)[1]
    )
    with pytest.raises(InferenceServerException, match="version 9 is not in the model repository"):
        http.infer(MODEL, [http_input(rows)], model_version="9", headers=http_headers())


def test_http_async_infer_and_bytes_labels(
    http: httpclient.InferenceServerClient,
) -> None:
    iris = np.float32([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    pending = http.async_infer("iris", [http_input(iris)], headers=http_headers())

    labels = pending.get_result().as_numpy("label")

    assert labels.tolist() == [b"setosa", b"virginica"]


def test_http_refuses_what_v1_refuses_as_a_v2_error(
    http: httpclient.InferenceServerClient, rows: np.ndarray
) -> None:
    bad = rows.copy()
    bad[2, 5] = np.nan
    with pytest.raises(InferenceServerException, match="row 2, feature 'mean compactness'"):
        http.infer(MODEL, [http_input(bad)], headers=http_headers())
    with pytest.raises(InferenceServerException, match="API key"):
        http.infer(MODEL, [http_input(rows)])


def test_grpc_health_metadata_infer_and_async_infer_with_tritonclient(
    stack: Stack, grpc: grpcclient.InferenceServerClient, rows: np.ndarray
) -> None:
    assert grpc.is_server_live() and grpc.is_server_ready()
    assert grpc.is_model_ready(MODEL, headers=GRPC_HEADERS)
    metadata = grpc.get_model_metadata(MODEL, headers=GRPC_HEADERS, as_json=True)
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "30"]}]

    result = grpc.infer(MODEL, [grpc_input(rows)], headers=GRPC_HEADERS, request_id="tc-grpc")
    answers: queue.Queue[Any] = queue.Queue()
    grpc.async_infer(
        MODEL,
        [grpc_input(rows)],
        lambda result, error: answers.put((result, error)),
        model_version="1",
        outputs=[grpcclient.InferRequestedOutput("label")],
        headers=GRPC_HEADERS,
    )
    later, error = answers.get(timeout=30)

    labels, probabilities = onnxruntime_outputs(stack, rows)
    np.testing.assert_array_equal(result.as_numpy("label"), labels)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), probabilities)
    assert result.get_response().id == "tc-grpc"
    assert error is None
    np.testing.assert_array_equal(later.as_numpy("label"), labels)
    assert later.as_numpy("probabilities") is None
    assert any(line["source"] == "grpc" for line in prediction_lines(stack.prediction_log_dir))


def test_grpc_errors_are_status_codes_never_a_hang(
    grpc: grpcclient.InferenceServerClient, rows: np.ndarray
) -> None:
    bad = rows.copy()
    bad[0, 0] = np.inf
    cases = [
        (MODEL, [grpc_input(bad)], GRPC_HEADERS, "INVALID_ARGUMENT", "is NaN or infinite"),
        (MODEL, [grpc_input(rows[:, :29])], GRPC_HEADERS, "INVALID_ARGUMENT", "expected [n, 30]"),
        ("nope", [grpc_input(rows)], GRPC_HEADERS, "NOT_FOUND", "nope"),
        (MODEL, [grpc_input(rows)], {}, "UNAUTHENTICATED", "needs an API key"),
        (MODEL, [grpc_input(rows)], {"x-api-key": "wrong"}, "UNAUTHENTICATED", "not valid"),
    ]
    for model, inputs, headers, code, message in cases:
        with pytest.raises(InferenceServerException) as caught:
            grpc.infer(model, inputs, headers=headers, client_timeout=10)
        assert caught.value.status() == f"StatusCode.{code}", caught.value
        assert message in caught.value.message()


def test_grpc_takes_an_api_key_as_x_api_key_too(
    grpc: grpcclient.InferenceServerClient, rows: np.ndarray
) -> None:
    result = grpc.infer(MODEL, [grpc_input(rows[:1])], headers={"x-api-key": KEY})
    assert result.as_numpy("label").shape == (1,)


def test_curl_posts_the_kserve_json_body_as_its_manual_says(
    stack: Stack, rows: np.ndarray, tmp_path: Path
) -> None:
    body = tmp_path / "infer.json"
    body.write_text(
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [2, 30],
                        "datatype": "FP32",
                        "data": rows[:2].tolist(),
                    }
                ]
            }
        )
    )
    # curl -d sends Content-Type: application/x-www-form-urlencoded: served all the same.
    completed = subprocess.run(
        ["curl", "-s", "-H", f"Authorization: Bearer {KEY}", "-d", f"@{body}",
         stack.url(f"/v2/models/{MODEL}/infer")],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip

    answer = json.loads(completed.stdout)
    labels, _ = onnxruntime_outputs(stack, rows[:2])
    assert answer["outputs"][0] == {
        "name": "label",
        "datatype": "INT64",
        "shape": [2],
        "data": labels.tolist(),
    }
