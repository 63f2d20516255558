"""Synchronous prediction from the warm in-process session."""

from __future__ import annotations

from functools import partial

from flask import Blueprint, g, jsonify, url_for
from flask.typing import ResponseReturnValue

from gateway.inputs import json_body, model_for, row_count
from gateway.openapi import documented
from gateway.prediction import predict_and_log
from gateway.responses import PredictResponse, describe_error_statuses
from gateway.services import current_services
from onnxq.models.inputs import PredictRequest, check_row_limit, parse_request, rows_to_matrix

bp = Blueprint("predict", __name__, url_prefix="/v1/models")


@bp.post("/<name>/predict")
@documented(
    body=PredictRequest,
    responses={200: PredictResponse, **describe_error_statuses(400, 401, 404, 413, 415, 422, 503)},
)
def predict(name: str) -> ResponseReturnValue:
    """Predict a small batch now and return labels and probabilities."""
    services = current_services()
    body = json_body()
    jobs_url = partial(url_for, "jobs.submit", name=name)
    check_row_limit(row_count(body), services.settings.sync_max_rows, jobs_url)
    request = parse_request(PredictRequest, body)
    model = model_for(name, request.version)
    matrix = rows_to_matrix(request.instances, model.manifest)
    result = predict_and_log(model, matrix, source="sync")
    return jsonify(
        model=model.name,
        version=model.version,
        request_id=g.request_id,
        **result.to_dict(),
    )
