"""The Open Inference Protocol (KServe "V2"), REST/JSON: health, metadata and inference."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import structlog
from flask import Blueprint, current_app, g, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest, NotFound

from gateway.body import read_body
from gateway.inputs import model_for
from gateway.openapi import documented
from gateway.prediction import predict_and_log
from gateway.services import current_services
from gateway.v2_http import (
    HEADER_LENGTH,
    InferBodyError,
    binary_outputs,
    parse_body,
    request_tensors,
    response_body,
)
from gateway.v2_schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelConfigResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    RepositoryIndexResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
    V2ErrorResponse,
    metadata_tensors,
)
from gateway.v2_tensors import TensorError, model_batch
from onnxq import __version__
from onnxq.errors import InvalidModel, ModelNotReady
from onnxq.models.manifest import TensorSpec
from onnxq.models.session import OnnxModel

bp = Blueprint("v2", __name__, url_prefix="/v2")
log = structlog.get_logger("onnxq.gateway")

SERVER_NAME = "onnxq"
PLATFORM = "onnx_onnxv1"  # the spec's platform name for "an ONNX model encoded for ONNX Runtime"
# The spec: "A 200 status code indicates true and a 4xx status code indicates false."
NOT_READY_STATUS = 400
VERSION = re.compile(r"^[1-9][0-9]{0,17}$")
EXTENSIONS = ["binary_tensor_data", "model_configuration"]
# Triton's model configuration names for the manifest's dtypes.
CONFIG_TYPES = {
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "float16": "TYPE_FP16",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "uint8": "TYPE_UINT8",
    "bool": "TYPE_BOOL",
    "string": "TYPE_STRING",
}


def _errors(*statuses: int) -> dict[int, type[V2ErrorResponse]]:
    return dict.fromkeys(statuses, V2ErrorResponse)


# ---- health and metadata ------------------------------------------------------------------


@bp.get("")
@bp.get("/")
@documented(responses={200: ServerMetadataResponse, **_errors(401)})
def server_metadata() -> ResponseReturnValue:
    """Server metadata: name, version and the protocol extensions it supports."""
    return jsonify(name=SERVER_NAME, version=__version__, extensions=EXTENSIONS)


@bp.get("/health/live")
@documented(responses={200: ServerLiveResponse}, public=True)
def server_live() -> ResponseReturnValue:
    """Answer at once: the process can take requests. Touches no dependency."""
    return jsonify(live=True)


@bp.get("/health/ready")
@documented(
    responses={200: ServerReadyResponse, NOT_READY_STATUS: ServerReadyResponse}, public=True
)
def server_ready() -> ResponseReturnValue:
    """Ready when every model's default version is loaded in this process; never asks Redis."""
    # load_models() also loads a model or a new default version that appeared after start-up.
    ready = current_services().load_models()
    return jsonify(ready=ready), 200 if ready else NOT_READY_STATUS


def _model(name: str, version: str | None) -> OnnxModel:
    """The model version a path names (else the default version); 404 when there is none."""
    if version is not None and not VERSION.fullmatch(version):
        raise NotFound(f"model '{name}' version '{version}' is not in the model repository")
    return model_for(name, None if version is None else int(version))


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
@documented(responses={200: ModelMetadataResponse, **_errors(401, 404)})
def model_metadata(name: str, version: str | None = None) -> ResponseReturnValue:
    """Model metadata: versions, platform, and input and output tensors."""
    model = _model(name, version)
    versions = current_services().repository.versions(model.name)
    return jsonify(
        name=model.name,
        versions=[str(number) for number in versions],
        platform=PLATFORM,
        inputs=metadata_tensors(model.manifest.inputs),
        outputs=metadata_tensors(model.manifest.outputs),
    )


@bp.get("/models/<name>/config")
@bp.get("/models/<name>/versions/<version>/config")
@documented(responses={200: ModelConfigResponse, **_errors(401, 404)})
def model_config(name: str, version: str | None = None) -> ResponseReturnValue:
    """The model configuration a Triton client reads: inputs and outputs without the batch
    axis, and the largest batch a request may carry (ONNXQ_SYNC_MAX_ROWS)."""
    model = _model(name, version)
    manifest = model.manifest
    return jsonify(
        name=model.name,
        platform="onnxruntime_onnx",
        backend="onnxruntime",
        version_policy={"specific": {"versions": [model.version]}},
        max_batch_size=current_services().settings.sync_max_rows,
        input=[_config_tensor(spec) for spec in manifest.inputs],
        output=[_config_tensor(spec) for spec in manifest.outputs],
    )


def _config_tensor(spec: TensorSpec) -> dict[str, Any]:
    dims = [-1 if size is None else size for size in spec.shape[1:]]
    entry: dict[str, Any] = {
        "name": spec.name,
        "data_type": CONFIG_TYPES[spec.dtype],
        "dims": dims or [1],
    }
    if not dims:  # a [batch] tensor: Triton writes one value a row as dims [1], reshaped to []
        entry["reshape"] = {"shape": []}
    return entry


@bp.post("/repository/index")
@documented(responses={200: RepositoryIndexResponse, **_errors(401)})
def repository_index() -> ResponseReturnValue:
    """Every model version in the repository; each is served on request (loaded on first use)."""
    repository = current_services().repository
    return jsonify(
        [
            {"name": name, "version": str(version), "state": "READY"}
            for name in repository.names()
            for version in repository.versions(name)
        ]
    )


@bp.get("/models/stats")
@bp.get("/models/<name>/stats")
@bp.get("/models/<name>/versions/<version>/stats")
@documented(responses={404: V2ErrorResponse, **_errors(401)})
def statistics(name: str | None = None, version: str | None = None) -> ResponseReturnValue:
    """Not kept per request here: the same figures are Prometheus metrics on GET /metrics."""
    raise NotFound(
        "inference statistics are not served by this endpoint: onnxq keeps them as Prometheus "
        "metrics, on GET /metrics (onnxq_inference_duration_seconds, onnxq_rows_predicted_total)"
    )


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
@documented(
    responses={200: ModelReadyResponse, NOT_READY_STATUS: ModelReadyResponse, **_errors(401, 404)}
)
def model_ready(name: str, version: str | None = None) -> ResponseReturnValue:
    """200 when the version is loaded here; a version that cannot be loaded is not ready."""
    try:
        ready = _model(name, version).ready
    except (InvalidModel, ModelNotReady) as exc:
        log.warning("model_not_ready", model=name, version=version, error=exc.message)
        ready = False
    return jsonify(name=name, ready=ready), 200 if ready else NOT_READY_STATUS


# ---- inference ----------------------------------------------------------------------------


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
@documented(
    body=InferenceRequest,
    responses={200: InferenceResponse, **_errors(400, 401, 404, 413, 503)},
)
def infer(name: str, version: str | None = None) -> ResponseReturnValue:
    """Run the input tensors (one of shape [n, features] for a tabular model) through the warm
    session now. The body is JSON, whatever its Content-Type, or JSON plus binary tensor data
    (`Inference-Header-Content-Length`); outputs come back as binary data when asked."""
    services = current_services()
    # The body is read first, whatever comes of it: an answer that leaves it unread would leave
    # its bytes on a keep-alive connection, to be taken for the next request.
    data = read_body()
    model = _model(name, version)
    manifest = model.manifest
    try:
        body, binary = parse_body(data, request.headers.get(HEADER_LENGTH))
    except InferBodyError as exc:
        raise BadRequest(str(exc)) from None
    produced = [output.name for output in manifest.outputs]
    wanted = [output.name for output in body.outputs or []] or produced
    unknown = [output for output in wanted if output not in produced]
    if unknown:
        raise BadRequest(f"unknown output '{unknown[0]}'; the outputs are {produced}")
    if len(set(wanted)) != len(wanted):
        raise BadRequest(f"an output is requested more than once: {wanted}")
    jobs_url = partial(url_for, "jobs.submit", name=model.name)
    try:
        tensors = request_tensors(body, binary, manifest)
        batch = model_batch(tensors, manifest, services.settings.sync_max_rows, jobs_url)
    except TensorError as exc:
        raise BadRequest(str(exc)) from None
    result = predict_and_log(model, batch, source="v2", outputs=wanted)
    header = {
        "model_name": model.name,
        "model_version": str(model.version),
        "id": body.id if body.id is not None else g.request_id,
    }
    answer, length = response_body(manifest, result, wanted, binary_outputs(body, wanted), header)
    if length is None:
        return current_app.response_class(answer, mimetype="application/json")
    response = current_app.response_class(answer, mimetype="application/octet-stream")
    response.headers[HEADER_LENGTH] = length
    return response
