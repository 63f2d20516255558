"""The Open Inference Protocol (KServe "V2"), REST/JSON: health, metadata and inference."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import structlog
from flask import Blueprint, g, jsonify, url_for
from flask.typing import ResponseReturnValue
from pydantic import ValidationError
from werkzeug.exceptions import BadRequest, NotFound, UnsupportedMediaType

from gateway.inputs import json_body, model_for
from gateway.openapi import documented
from gateway.prediction import predict_and_log
from gateway.services import current_services
from gateway.v2_schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
    TensorError,
    V2ErrorResponse,
    decode_inputs,
    describe,
    metadata_tensors,
    response_outputs,
)
from onnxq import __version__
from onnxq.errors import InvalidModel, ModelNotReady
from onnxq.models.session import OnnxModel

bp = Blueprint("v2", __name__, url_prefix="/v2")
log = structlog.get_logger("onnxq.gateway")

SERVER_NAME = "onnxq"
PLATFORM = "onnx_onnxv1"  # the spec's platform name for "an ONNX model encoded for ONNX Runtime"
# The spec: "A 200 status code indicates true and a 4xx status code indicates false."
NOT_READY_STATUS = 400
VERSION = re.compile(r"^[1-9][0-9]{0,17}$")


def _errors(*statuses: int) -> dict[int, type[V2ErrorResponse]]:
    return dict.fromkeys(statuses, V2ErrorResponse)


# ---- health and metadata ------------------------------------------------------------------


@bp.get("")
@bp.get("/")
@documented(responses={200: ServerMetadataResponse, **_errors(401)})
def server_metadata() -> ResponseReturnValue:
    """Server metadata: name, version and supported extensions (none)."""
    return jsonify(name=SERVER_NAME, version=__version__, extensions=[])


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


def _request_body() -> Any:
    """The parsed JSON body; every way of not sending one is a 400 in this protocol."""
    try:
        return json_body()
    except UnsupportedMediaType as exc:
        raise BadRequest(exc.description) from exc
    except RecursionError:
        raise BadRequest("the request body is nested too deeply") from None


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
@documented(
    body=InferenceRequest,
    responses={200: InferenceResponse, **_errors(400, 401, 404, 413, 503)},
)
def infer(name: str, version: str | None = None) -> ResponseReturnValue:
    """Run the input tensors (one of shape [n, features] for a tabular model) through the warm
    session now."""
    services = current_services()
    model = _model(name, version)
    manifest = model.manifest
    try:
        body = InferenceRequest.model_validate(_request_body())
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from None
    produced = [output.name for output in manifest.outputs]
    wanted = [output.name for output in body.outputs or []] or produced
    unknown = [output for output in wanted if output not in produced]
    if unknown:
        raise BadRequest(f"unknown output '{unknown[0]}'; the outputs are {produced}")
    if len(set(wanted)) != len(wanted):
        raise BadRequest(f"an output is requested more than once: {wanted}")
    jobs_url = partial(url_for, "jobs.submit", name=model.name)
    try:
        batch = decode_inputs(body.inputs, manifest, services.settings.sync_max_rows, jobs_url)
    except TensorError as exc:
        raise BadRequest(str(exc)) from None
    result = predict_and_log(model, batch, source="v2", outputs=wanted)
    outputs = response_outputs(manifest, result)
    return jsonify(
        model_name=model.name,
        model_version=str(model.version),
        id=body.id if body.id is not None else g.request_id,
        outputs=[outputs[output] for output in wanted],
    )
