"""The Open Inference Protocol over gRPC: `inference.GRPCInferenceService`, as Triton serves it.

Served by grpc's asyncio server: a call's work (checks, the session run, the log) runs in the
event loop itself, as a gevent worker runs an HTTP request: with no thread hand-off per call,
which cost the threaded server a third of a 1-row call.

The same model repository, checks, prediction log and metrics as the HTTP routes: an input
arrives as `raw_input_contents` (what tritonclient sends) or typed `contents`, becomes a
`v2_tensors.Tensor`, and goes through `model_batch` like any HTTP input; outputs go back as
`raw_output_contents`. Each call is one `request` log event, as an HTTP request is.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import structlog

from gateway.auth import key_is_valid
from gateway.grpc_api import open_inference_pb2 as pb
from gateway.grpc_api import open_inference_pb2_grpc as pb_grpc
from gateway.prediction import run_and_log
from gateway.v2_tensors import (
    DATATYPES,
    RAW_DTYPES,
    Tensor,
    TensorError,
    model_batch,
    raw_bytes,
    raw_tensor,
)
from onnxq import __version__
from onnxq.errors import InvalidModel, ModelNotReady, OnnxqError, Unauthorized
from onnxq.models.repository import ModelRepository
from onnxq.models.session import OnnxModel
from onnxq.settings import Settings
from onnxq.telemetry import metrics
from onnxq.telemetry.prediction_log import PredictionLog

log = structlog.get_logger("onnxq.gateway")

SERVER_NAME = "onnxq"
PLATFORM = "onnx_onnxv1"
REQUEST_ID_KEY = "x-request-id"
# HTTP statuses of onnxq's errors as the gRPC codes clients expect for them.
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}
# Typed contents fields, by datatype.
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


class RpcError(Exception):
    """A call's failure: its gRPC code and the message the client reads."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class GrpcServices:
    """What the servicer needs: built once per server process (gateway.grpc_api.server)."""

    settings: Settings
    repository: ModelRepository
    prediction_log: PredictionLog

    def authorize(self, metadata: dict[str, Any]) -> None:
        """The HTTP routes' API keys, from `authorization: Bearer <key>` or `x-api-key`."""
        if not self.settings.api_keys:
            return
        scheme, _, value = str(metadata.get("authorization", "")).partition(" ")
        key = value.strip() if scheme.lower() == "bearer" else metadata.get("x-api-key")
        if not key:
            raise Unauthorized("this call needs an API key: metadata 'authorization: Bearer <key>'")
        if not key_is_valid(str(key), self.settings):
            raise Unauthorized("the API key is not valid")


def rpc(open_call: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One gRPC method: authorised (unless a probe), logged once, counted, errors as codes."""

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        name = method.__name__

        @functools.wraps(method)
        async def call(self: InferenceServicer, request: Any, context: Any) -> Any:
            started = time.perf_counter()
            metadata = dict(context.invocation_metadata() or ())
            offered = metadata.get(REQUEST_ID_KEY)
            request_id = str(offered)[:128] if offered else os.urandom(16).hex()
            noted: dict[str, Any] = {}
            structlog.contextvars.bind_contextvars(request_id=request_id, process="grpc")
            code = grpc.StatusCode.OK
            try:
                if not open_call:
                    self.services.authorize(metadata)
                return method(self, request, context, noted, request_id)
            except RpcError as exc:
                code = exc.code
                noted["error"] = exc.message
                await context.abort(code, exc.message)
            except OnnxqError as exc:
                code = CODES.get(exc.status_code, grpc.StatusCode.INTERNAL)
                noted["error_type"] = exc.error_type
                await context.abort(code, exc.message)
            except Exception as exc:  # a bug: logged with its traceback, never a crash
                code = grpc.StatusCode.INTERNAL
                noted["exception_type"] = type(exc).__name__
                log.exception("grpc_call_failed", method=name)
                await context.abort(code, f"internal error; quote the request id {request_id}")
            finally:
                seconds = time.perf_counter() - started
                metrics.grpc_request_served(name, code.name, seconds)
                (log.warning if code == grpc.StatusCode.INTERNAL else log.info)(
                    "request",
                    method=name,
                    protocol="grpc",
                    status=code.name,
                    duration_ms=round(seconds * 1000, 3),
                    **noted,
                )
                structlog.contextvars.unbind_contextvars("request_id")

        return call

    return decorate


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, services: GrpcServices):
        self.services = services

    def _model(self, name: str, version: str) -> OnnxModel:
        if version and not version.isdigit():
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"model '{name}' has no version '{version}'")
        return self.services.repository.get(name, int(version) if version else None)

    @rpc(open_call=True)
    def ServerLive(self, request: Any, context: Any, noted: dict, request_id: str) -> Any:
        return pb.ServerLiveResponse(live=True)

    @rpc(open_call=True)
    def ServerReady(self, request: Any, context: Any, noted: dict, request_id: str) -> Any:
        try:
            self.services.repository.load_defaults()
        except OnnxqError as exc:
            log.error("model_load_failed", error=exc.message)
            return pb.ServerReadyResponse(ready=False)
        return pb.ServerReadyResponse(ready=self.services.repository.ready)

    @rpc()
    def ModelReady(self, request: Any, context: Any, noted: dict, request_id: str) -> Any:
        try:
            ready = self._model(request.name, request.version).ready
        except (InvalidModel, ModelNotReady):
            ready = False
        return pb.ModelReadyResponse(ready=ready)

    @rpc()
    def ServerMetadata(self, request: Any, context: Any, noted: dict, request_id: str) -> Any:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=[])

    @rpc()
    def ModelMetadata(self, request: Any, context: Any, noted: dict, request_id: str) -> Any:
        model = self._model(request.name, request.version)

        def tensors(specs: Any) -> list[Any]:
            return [
                pb.ModelMetadataResponse.TensorMetadata(
                    name=spec.name,
                    datatype=DATATYPES[spec.dtype],
                    shape=[-1 if size is None else size for size in spec.shape],
                )
                for spec in specs
            ]

        return pb.ModelMetadataResponse(
            name=model.name,
            versions=[str(v) for v in self.services.repository.versions(model.name)],
            platform=PLATFORM,
            inputs=tensors(model.manifest.inputs),
            outputs=tensors(model.manifest.outputs),
        )

    @rpc()
    def ModelInfer(self, request: Any, context: Any, noted: dict, request_id: str) -> Any:
        model = self._model(request.model_name, request.model_version)
        manifest = model.manifest
        noted.update(model=model.name, version=model.version)
        produced = [output.name for output in manifest.outputs]
        wanted = [output.name for output in request.outputs] or produced
        unknown = [name for name in wanted if name not in produced]
        if unknown or len(set(wanted)) != len(wanted):
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown or repeated output {unknown or wanted}; the outputs are {produced}",
            )
        try:
            tensors = request_tensors(request)
            batch = model_batch(
                tensors, manifest, self.services.settings.sync_max_rows, _jobs_route(model.name)
            )
        except TensorError as exc:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        noted["rows"] = len(batch)
        result = run_and_log(
            model, batch, "grpc", self.services.prediction_log, request_id, outputs=wanted
        )
        dtypes = {spec.name: DATATYPES[spec.dtype] for spec in manifest.outputs}
        response = pb.ModelInferResponse(
            model_name=model.name, model_version=str(model.version), id=request.id
        )
        for name in wanted:
            array = result.tensors[name]
            response.outputs.add(name=name, datatype=dtypes[name], shape=list(array.shape))
            response.raw_output_contents.append(raw_bytes(array, dtypes[name]))
        return response


def _jobs_route(name: str) -> Callable[[], str]:
    return lambda: f"/v1/models/{name}/jobs"


def request_tensors(request: Any) -> list[Tensor]:
    """Every input of a ModelInferRequest as a Tensor: raw contents, one per input, or typed."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise TensorError(
            f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs: send one per input"
        )
    tensors = []
    for index, tensor in enumerate(request.inputs):
        shape = list(tensor.shape)
        if raw:
            tensors.append(raw_tensor(tensor.name, tensor.datatype, shape, raw[index]))
            continue
        field = CONTENTS.get(tensor.datatype)
        if field is None:
            raise TensorError(
                f"input '{tensor.name}' has datatype '{tensor.datatype}': send it as "
                "raw_input_contents"
            )
        values = list(getattr(tensor.contents, field))
        try:
            array = (
                np.asarray(values, dtype=object)
                if tensor.datatype == "BYTES"
                else np.asarray(values, dtype=RAW_DTYPES[tensor.datatype])
            )
        except (OverflowError, ValueError):
            raise TensorError(
                f"input '{tensor.name}' holds a value outside {tensor.datatype}"
            ) from None
        if len(array) != int(np.prod(shape)):
            raise TensorError(
                f"input '{tensor.name}' has {len(array)} elements; shape {shape} needs "
                f"{int(np.prod(shape))}"
            )
        tensors.append(Tensor(tensor.name, tensor.datatype, shape, array))
    return tensors
