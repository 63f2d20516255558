"""The gRPC service in-process, with the protocol's own stubs: typed `contents` (what KServe's
clients send), raw contents, one per input, and the errors a client gets instead of a crash."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from gateway.grpc_api import open_inference_pb2 as pb
from gateway.grpc_api import open_inference_pb2_grpc as pb_grpc
from gateway.grpc_api.server import build_server
from onnxq.devtools.redis_server import free_port
from onnxq.settings import Settings
from tests.support.prediction_log import prediction_lines


@pytest.fixture
def stub(settings: Settings) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    """The asyncio server on its own event loop in a thread, as its process runs it."""
    settings = settings.model_copy(update={"grpc_port": free_port()})
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> Any:
        server, _ = build_server(settings)
        await server.start()
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    channel = grpc.insecure_channel(f"127.0.0.1:{settings.grpc_port}")
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()
    asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def request(rows: np.ndarray, raw: bool) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="breast-cancer", id="c1")
    tensor = message.inputs.add(name="input", datatype="FP32", shape=list(rows.shape))
    if raw:
        message.raw_input_contents.append(rows.astype("<f4").tobytes())
    else:
        tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    return message


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_typed_and_raw_contents_give_the_same_answer(
    stub: pb_grpc.GRPCInferenceServiceStub, settings: Settings, raw: bool
) -> None:
    rows = np.arange(60, dtype=np.float32).reshape(2, 30) / 10

    answer = stub.ModelInfer(request(rows, raw))

    assert (answer.model_name, answer.model_version, answer.id) == ("breast-cancer", "1", "c1")
    assert [o.name for o in answer.outputs] == ["label", "probabilities"]
    probabilities = np.frombuffer(answer.raw_output_contents[1], "<f4").reshape(2, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    lines = prediction_lines(settings.prediction_log_dir)
    assert [line["source"] for line in lines] == ["grpc", "grpc"]
    assert lines[0]["request_id"] and lines[0]["features"][:2] == [0.0, 0.1]


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda m: m.raw_input_contents.append(b"x"), "INVALID_ARGUMENT", "raw_input_contents"),
        (lambda m: setattr(m, "model_version", "x"), "NOT_FOUND", "no version 'x'"),
        (lambda m: m.outputs.add(name="nope"), "INVALID_ARGUMENT", "unknown or repeated"),
        (lambda m: setattr(m.inputs[0], "datatype", "BF16"), "INVALID_ARGUMENT", "BF16"),
    ],
    ids=["two-raw-for-one-input", "bad-version", "unknown-output", "datatype"],
)
def test_a_bad_call_is_a_status_code_with_its_reason(
    stub: pb_grpc.GRPCInferenceServiceStub, change, code: str, message: str
) -> None:
    call = request(np.ones((1, 30), np.float32), raw=True)
    change(call)

    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(call, timeout=10)

    assert caught.value.code().name == code
    assert message in caught.value.details()


def test_more_rows_than_the_synchronous_limit_is_invalid_argument_naming_the_jobs_route(
    stub: pb_grpc.GRPCInferenceServiceStub, settings: Settings
) -> None:
    rows = np.ones((settings.sync_max_rows + 1, 30), np.float32)

    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request(rows, raw=True), timeout=10)

    assert caught.value.code().name == "INVALID_ARGUMENT"
    assert "/v1/models/breast-cancer/jobs" in caught.value.details()


def test_the_probes_and_metadata_answer(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="breast-cancer", version="1")).ready
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="breast-cancer"))
    assert [(t.name, list(t.shape)) for t in metadata.inputs] == [("input", [-1, 30])]
    assert stub.ServerMetadata(pb.ServerMetadataRequest()).name == "onnxq"
