"""V2 over HTTP as Triton clients send it: no Content-Type, binary tensor data both ways, the
model configuration, the repository index, and statistics answered with a clear 404."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from gateway.services import Services
from tests.support.prediction_log import prediction_lines

HEADER = "Inference-Header-Content-Length"


def binary_body(
    inputs: list[tuple[str, str, np.ndarray]], **request: Any
) -> tuple[bytes, dict[str, str]]:
    """A request as tritonclient.http builds it: JSON header, then each input's raw bytes."""
    header = {
        **request,
        "inputs": [
            {
                "name": name,
                "datatype": datatype,
                "shape": list(array.shape),
                "parameters": {"binary_data_size": array.nbytes},
            }
            for name, datatype, array in inputs
        ],
    }
    text = json.dumps(header).encode()
    raw = b"".join(np.ascontiguousarray(array).tobytes() for _, _, array in inputs)
    return text + raw, {HEADER: str(len(text)), "Content-Type": "application/octet-stream"}


def split_response(response: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON header of a binary response and each binary output's bytes."""
    data = response.get_data()
    length = int(response.headers[HEADER])
    header = json.loads(data[:length])
    blobs, offset = {}, length
    for output in header["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            blobs[output["name"]] = data[offset : offset + size]
            offset += size
    assert offset == len(data)
    return header, blobs


def rows(count: int = 3) -> np.ndarray:
    return np.asarray([[1.0 + (i + j) % 7 for j in range(30)] for i in range(count)], np.float32)


def infer(client: FlaskClient, name: str, body: bytes, headers: dict[str, str]):
    return client.post(f"/v2/models/{name}/infer", data=body, headers=headers)


def json_answer(client: FlaskClient, name: str, matrix: np.ndarray) -> dict[str, Any]:
    body = {"inputs": [{"name": "input", "shape": list(matrix.shape), "datatype": "FP32",
                        "data": matrix.ravel().tolist()}]}  # fmt: skip
    response = client.post(f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 200
    return {output["name"]: output for output in response.get_json()["outputs"]}


def test_a_json_body_without_any_content_type_is_an_inference_request(
    client: FlaskClient, demo_model_name: str
) -> None:
    matrix = rows()
    body = {"inputs": [{"name": "input", "shape": [3, 30], "datatype": "FP32",
                        "data": matrix.ravel().tolist()}]}  # fmt: skip

    response = client.post(
        f"/v2/models/{demo_model_name}/infer", data=json.dumps(body), content_type=""
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Content-Type" not in response.request.headers or not response.request.content_type
    assert response.get_json()["outputs"][0]["shape"] == [3]


@pytest.mark.parametrize(
    ("datatype", "dtype"), [("FP32", "<f4"), ("FP64", "<f8"), ("INT64", "<i8"), ("FP16", "<f2")]
)
def test_binary_inputs_of_any_number_type_answer_as_json_inputs_do(
    client: FlaskClient, demo_model_name: str, datatype: str, dtype: str
) -> None:
    matrix = rows()
    body, headers = binary_body([("input", datatype, matrix.astype(dtype))])

    response = infer(client, demo_model_name, body, headers)

    assert response.status_code == 200, response.get_data(as_text=True)
    outputs = {o["name"]: o for o in response.get_json()["outputs"]}
    assert outputs == json_answer(client, demo_model_name, matrix)


def test_binary_outputs_when_the_request_asks_for_all_of_them(
    client: FlaskClient, demo_model_name: str, services: Services
) -> None:
    matrix = rows()
    body, headers = binary_body(
        [("input", "FP32", matrix)], parameters={"binary_data_output": True}, id="b1"
    )

    response = infer(client, demo_model_name, body, headers)
    header, blobs = split_response(response)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert header["id"] == "b1" and header["model_name"] == demo_model_name
    labels = np.frombuffer(blobs["label"], dtype="<i8")
    probabilities = np.frombuffer(blobs["probabilities"], dtype="<f4").reshape(3, 2)
    expected = json_answer(client, demo_model_name, matrix)
    assert labels.tolist() == expected["label"]["data"]
    assert probabilities.ravel().tolist() == pytest.approx(expected["probabilities"]["data"])
    np.testing.assert_array_equal(
        probabilities, np.float32(expected["probabilities"]["data"]).reshape(3, 2)
    )
    assert all("data" not in output for output in header["outputs"])
    assert len([line for line in prediction_lines(services.settings.prediction_log_dir)]) == 6


def test_one_output_in_binary_and_one_in_json_as_each_asks(
    client: FlaskClient, demo_model_name: str
) -> None:
    body, headers = binary_body(
        [("input", "FP32", rows(2))],
        outputs=[
            {"name": "probabilities", "parameters": {"binary_data": True}},
            {"name": "label", "parameters": {"binary_data": False}},
        ],
    )

    header, blobs = split_response(infer(client, demo_model_name, body, headers))

    assert [o["name"] for o in header["outputs"]] == ["probabilities", "label"]
    assert set(blobs) == {"probabilities"} and len(blobs["probabilities"]) == 2 * 2 * 4
    assert (
        header["outputs"][1]["data"]
        == json_answer(client, demo_model_name, rows(2))["label"]["data"]
    )


def test_a_json_request_that_asks_for_binary_outputs_gets_them(
    client: FlaskClient, demo_model_name: str
) -> None:
    matrix = rows(1)
    body = {
        "inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32",
                    "data": matrix.ravel().tolist()}],
        "outputs": [{"name": "label", "parameters": {"binary_data": True}}],
    }  # fmt: skip

    response = client.post(f"/v2/models/{demo_model_name}/infer", json=body)
    _, blobs = split_response(response)

    assert (
        np.frombuffer(blobs["label"], "<i8").tolist()
        == json_answer(client, demo_model_name, matrix)["label"]["data"]
    )


def test_string_labels_come_back_as_length_prefixed_bytes(
    kinds_client: FlaskClient,
) -> None:
    matrix = np.float32([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    body, headers = binary_body(
        [("input", "FP32", matrix)], parameters={"binary_data_output": True}
    )

    header, blobs = split_response(infer(kinds_client, "iris", body, headers))

    raw, labels = blobs["label"], []
    while raw:
        (size,) = struct.unpack_from("<I", raw)
        labels.append(raw[4 : 4 + size].decode())
        raw = raw[4 + size :]
    assert header["outputs"][0]["datatype"] == "BYTES"
    assert labels == ["setosa", "virginica"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": 10}, "has 10 bytes of data; shape [2, 30] of FP32 needs 240"),
        ({"header": "9999999"}, "Inference-Header-Content-Length is 9999999"),
        ({"header": "abc"}, "is not a number"),
        ({"extra": b"\x00" * 8}, "add up to"),
        ({"nan": True}, "row 1, feature 'mean texture') is NaN or infinite"),
        ({"rows": 5000}, "more than the synchronous limit"),
    ],
    ids=["size", "header-too-long", "header-not-a-number", "trailing-bytes", "nan", "rows"],
)
def test_a_binary_request_that_does_not_add_up_is_a_400_saying_why(
    client: FlaskClient, demo_model_name: str, change: dict[str, Any], message: str
) -> None:
    matrix = rows(change.get("rows", 2))
    if change.get("nan"):
        matrix[1, 1] = math.nan
    body, headers = binary_body([("input", "FP32", matrix)])
    if "size" in change:
        size = {"binary_data_size": change["size"]}
        text = json.dumps(
            {
                "inputs": [
                    {"name": "input", "datatype": "FP32", "shape": [2, 30], "parameters": size}
                ]
            }
        )
        body, headers = text.encode() + matrix.tobytes(), {HEADER: str(len(text))}
    if "header" in change:
        headers[HEADER] = change["header"]
    body += change.get("extra", b"")

    response = infer(client, demo_model_name, body, headers)

    assert response.status_code == 400, response.get_data(as_text=True)
    assert message in response.get_json()["error"]


def test_the_model_configuration_names_inputs_outputs_and_the_largest_batch(
    client: FlaskClient, demo_model_name: str, services: Services
) -> None:
    config = client.get(f"/v2/models/{demo_model_name}/config").get_json()
    pinned = client.get(f"/v2/models/{demo_model_name}/versions/1/config")

    assert config["max_batch_size"] == services.settings.sync_max_rows
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [30]}]
    assert config["output"][0] == {
        "name": "label",
        "data_type": "TYPE_INT64",
        "dims": [1],
        "reshape": {"shape": []},
    }
    assert config["output"][1]["dims"] == [2]
    assert pinned.status_code == 200
    assert client.get("/v2/models/nope/config").status_code == 404


def test_the_repository_index_lists_every_version_and_statistics_say_where_they_are(
    client: FlaskClient, demo_model_name: str
) -> None:
    index = client.post("/v2/repository/index")
    stats = client.get("/v2/models/stats")
    model_stats = client.get(f"/v2/models/{demo_model_name}/stats")

    assert index.get_json() == [{"name": demo_model_name, "version": "1", "state": "READY"}]
    assert stats.status_code == model_stats.status_code == 404
    assert "GET /metrics" in stats.get_json()["error"]
