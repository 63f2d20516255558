"""Queued prediction jobs: submit, then poll."""

from __future__ import annotations

import re

from flask import Blueprint, g, jsonify, url_for
from flask.typing import ResponseReturnValue

from gateway.body import json_body
from gateway.services import current_services
from onnxq.errors import JobNotFound
from onnxq.schemas import parse_predict_request

bp = Blueprint("jobs", __name__, url_prefix="/v1")

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
POLL_AFTER_SECONDS = 1


@bp.post("/models/<name>/jobs")
def submit(name: str) -> ResponseReturnValue:
    """Validate the rows, queue them as a job, and say where to poll."""
    services = current_services()
    model = services.repository.get(name)
    g.model, g.version = model.name, model.version
    request, _ = parse_predict_request(json_body(), model.manifest)
    g.rows = len(request.instances)
    job = services.queue.submit(
        model=model.name,
        version=model.version,
        instances=request.instances,
        request_id=g.request_id,
    )
    g.job_id = job.job_id
    response = jsonify(
        job_id=job.job_id, status=job.status.value, model=job.model, version=job.version
    )
    response.status_code = 202
    response.headers["Location"] = url_for("jobs.poll", job_id=job.job_id)
    response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    return response


@bp.get("/jobs/<job_id>")
def poll(job_id: str) -> ResponseReturnValue:
    """Return a job's status, and its result or error once it has ended."""
    g.job_id = job_id
    if not JOB_ID.fullmatch(job_id):
        raise JobNotFound(job_id)
    job = current_services().jobs.get(job_id)
    return jsonify(job.public())
