"""Queued prediction jobs: submit, poll, cancel."""

from __future__ import annotations

import re

from flask import Blueprint, g, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest

from gateway.auth import client_identity
from gateway.inputs import body_fingerprint, json_body, model_for, row_count
from gateway.openapi import documented
from gateway.responses import describe_error_statuses
from gateway.services import current_services
from onnxq.errors import JobNotFound
from onnxq.jobs.record import Job
from onnxq.models.inputs import JobRequest, check_row_limit, parse_request, rows_to_matrix

bp = Blueprint("jobs", __name__, url_prefix="/v1")

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as in the IETF draft
POLL_AFTER_SECONDS = 1


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1-255 visible ASCII characters")
    return key


@bp.post("/models/<name>/jobs")
@documented(
    body=JobRequest,
    responses={
        200: Job,
        202: Job,
        **describe_error_statuses(400, 401, 404, 409, 413, 415, 422, 503),
    },
    headers={
        "Idempotency-Key": {
            "description": "Repeat a submit safely: same key and body return the same job.",
            "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
        }
    },
)
def submit(name: str) -> ResponseReturnValue:
    """Validate the rows, queue them as a job, and say where to poll."""
    key = _idempotency_key()
    body = json_body()
    check_row_limit(row_count(body), current_services().settings.job_max_rows)
    job_request = parse_request(JobRequest, body)
    model = model_for(name, job_request.version)
    matrix = rows_to_matrix(job_request.instances, model.manifest)  # bad rows: 422, no job
    g.rows = len(job_request.instances)
    submission = current_services().queue.submit(
        model=model.name,
        version=model.version,
        matrix=matrix,
        request_id=g.request_id,
        callback_url=str(job_request.callback_url) if job_request.callback_url else None,
        idempotency_key=key,
        idempotency_scope=client_identity(),
        fingerprint=body_fingerprint(name, body) if key is not None else "",
    )
    job = submission.job
    g.job_id = job.job_id
    response = jsonify(job.public())
    # A replayed submit of a job that has ended answers 200: nothing new was accepted.
    response.status_code = 200 if submission.replayed and job.status.ended else 202
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = url_for("jobs.poll", job_id=job.job_id)
    if not job.status.ended:
        response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    return response


def _checked_job_id(job_id: str) -> str:
    g.job_id = job_id
    if not JOB_ID.fullmatch(job_id):
        raise JobNotFound(job_id)
    return job_id


@bp.get("/jobs/<job_id>")
@documented(responses={200: Job, **describe_error_statuses(401, 404, 503)})
def poll(job_id: str) -> ResponseReturnValue:
    """Return a job's status, and its result or error once it has ended."""
    job = current_services().jobs.get(_checked_job_id(job_id))
    response = jsonify(job.public())
    if not job.status.ended:
        response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    return response


@bp.delete("/jobs/<job_id>")
@documented(responses={200: Job, **describe_error_statuses(401, 404, 409, 503)})
def cancel(job_id: str) -> ResponseReturnValue:
    """Cancel a queued job so that it never runs; 409 once it is running or has ended."""
    job = current_services().queue.cancel(_checked_job_id(job_id))
    return jsonify(job.public())
