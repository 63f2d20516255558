"""Queued prediction jobs: submit, poll (one job or several), cancel."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from flask import Blueprint, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest

from gateway.auth import client_identity
from gateway.file_jobs import FILE_QUERY, file_job
from gateway.inputs import body_fingerprint, json_body, model_for, row_count
from gateway.openapi import documented
from gateway.responses import describe_error_statuses
from gateway.services import current_services
from onnxq.errors import InvalidInput, JobNotFound
from onnxq.jobs.queue import Submission, new_job_id
from onnxq.jobs.record import Job, JobList
from onnxq.models.file_inputs import FILE_TYPES
from onnxq.models.inputs import JobRequest, check_row_limit, parse_request, rows_to_matrix
from onnxq.models.session import OnnxModel

bp = Blueprint("jobs", __name__, url_prefix="/v1")

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as in the IETF draft
POLL_AFTER_SECONDS = 1
MAX_WAIT_SECONDS = 30
# Ids one poll may ask for: 100 ids and their commas fit in gunicorn's 4,094-byte request line.
MAX_IDS_PER_POLL = 100
# RFC 7240's "wait" preference, e.g. `Prefer: respond-async, wait=10`.
PREFER_WAIT = re.compile(r"(?:^|[,;]\s*)wait\s*=\s*\"?(\d+(?:\.\d+)?)\"?", re.IGNORECASE)
WAIT_PARAMETER = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": "Answer as soon as the job ends, or after this many seconds (0-30) with its "
    "current state. The `Prefer: wait=<seconds>` header (RFC 7240) does the same, capped at 30.",
    "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
}
IDS_PARAMETER = {
    "name": "ids",
    "in": "query",
    "required": True,
    "description": f"Job ids, comma-separated (or the parameter repeated), 1-{MAX_IDS_PER_POLL}.",
    "schema": {"type": "string"},
    "style": "form",
    "explode": False,
}
PREFER_HEADER = {
    "description": "`wait=<seconds>` (RFC 7240): answer as soon as the job ends, or after that "
    "long (at most 30 s) with its current state.",
    "schema": {"type": "string", "example": "wait=10"},
}


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1-255 visible ASCII characters")
    return key


def _wait_seconds(*, query: bool) -> float | None:
    """How long this request asks to wait for its job to end: `?wait=` (checked), else Prefer.

    An out-of-range `?wait=` is a 422; a Prefer header is a hint (RFC 7240): capped, and ignored
    when it cannot be read.
    """
    raw = request.args.get("wait") if query else None
    if raw is not None:
        try:
            seconds = float(raw)
        except ValueError:
            seconds = float("nan")
        if not 0 <= seconds <= MAX_WAIT_SECONDS:
            raise InvalidInput(
                f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS}",
                details=[{"field": "wait", "message": f"got {raw!r}"}],
            )
        return seconds
    match = PREFER_WAIT.search(request.headers.get("Prefer", ""))
    return min(float(match.group(1)), MAX_WAIT_SECONDS) if match else None


def _waited(job: Job, seconds: float | None) -> Job:
    if seconds is None or seconds <= 0 or job.status.ended:
        return job
    services = current_services()
    return services.waiter.until_ended(services.jobs, job.job_id, seconds)


def _submitted_and_waited(seconds: float | None, job_id: str, **job: Any) -> tuple[Submission, Job]:
    """Queue job `job_id`; with `Prefer: wait`, wait for it, registered before it exists so that
    its end cannot be missed and need not be read back."""
    services = current_services()
    if seconds is None or seconds <= 0:
        submission = services.queue.submit(job_id=job_id, **job)
        return submission, submission.job
    with services.waiter.registered(job_id) as waiting:
        submission = services.queue.submit(job_id=job_id, notify=services.waiter.channel, **job)
        if submission.replayed:  # an earlier job of this idempotency key: wait for that one
            return submission, _waited(submission.job, seconds)
        return submission, services.waiter.until_ended_from(
            waiting, services.jobs, submission.job, seconds
        )


def _job_response(job: Job, status: int, waited: float | None) -> ResponseReturnValue:
    response = jsonify(job.public())
    response.status_code = status
    return _wait_headers(response, job.status.ended, waited)


def _wait_headers(response: Response, ended: bool, waited: float | None) -> Response:
    """`Retry-After` while the job (any of the jobs) has not ended; `Preference-Applied` when a
    Prefer header asked to wait."""
    if not ended:
        response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    if waited is not None and "Prefer" in request.headers:
        response.headers["Preference-Applied"] = f"wait={waited:g}"
    return response


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
        },
        "Prefer": PREFER_HEADER,
    },
    parameters=FILE_QUERY,
    files=FILE_TYPES,
)
def submit(name: str) -> ResponseReturnValue:
    """Validate the rows, queue them as a job, and say where to poll. The rows come as JSON, or
    as a file: an Arrow IPC stream or a .npy array (`version`, `callback_url` and
    `extra=ignore` then in the query)."""
    key = _idempotency_key()
    seconds = _wait_seconds(query=False)
    job_id = new_job_id()  # a large file's rows are written under it as they are read
    if request.mimetype in FILE_TYPES:
        model, matrix, callback_url, fingerprint = file_job(name, job_id, key is not None)
    else:
        model, matrix, callback_url, fingerprint = _json_job(name, with_fingerprint=key is not None)
    submission, job = _submitted_and_waited(
        seconds,
        job_id,
        model=model.name,
        version=model.version,
        matrix=matrix,
        request_id=g.request_id,
        callback_url=callback_url,
        idempotency_key=key,
        idempotency_scope=client_identity(),
        fingerprint=fingerprint,
    )
    g.job_id = job.job_id
    # A job that has ended (waited for, or an idempotent replay) answers 200 with its outcome.
    response = _job_response(job, 200 if job.status.ended else 202, seconds)
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    # What url_for("jobs.poll", ...) builds, without building a URL adapter on every submit.
    response.headers["Location"] = f"{request.script_root}{bp.url_prefix}/jobs/{job.job_id}"
    return response


def _json_job(name: str, with_fingerprint: bool) -> tuple[OnnxModel, np.ndarray, str | None, str]:
    body = json_body()
    check_row_limit(row_count(body), current_services().settings.job_max_rows)
    job_request = parse_request(JobRequest, body)
    callback_url = str(job_request.callback_url) if job_request.callback_url else None
    if callback_url is not None:
        current_services().destinations.check_url(callback_url)  # 422 naming the rule
    model = model_for(name, job_request.version)
    matrix = rows_to_matrix(job_request.instances, model.manifest)  # bad rows: 422, no job
    g.rows = len(job_request.instances)
    return model, matrix, callback_url, body_fingerprint(name, body) if with_fingerprint else ""


def checked_job_id(job_id: str) -> str:
    g.job_id = job_id
    if not JOB_ID.fullmatch(job_id):
        raise JobNotFound(job_id)
    return job_id


@bp.get("/jobs/<job_id>")
@documented(
    responses={200: Job, **describe_error_statuses(401, 404, 422, 503)},
    parameters=[WAIT_PARAMETER],
    headers={"Prefer": PREFER_HEADER},
)
def poll(job_id: str) -> ResponseReturnValue:
    """Return a job's status, and its result or error once it has ended; `wait` holds the answer
    until the job ends (or the wait runs out)."""
    seconds = _wait_seconds(query=True)
    services = current_services()
    job_id = checked_job_id(job_id)
    if seconds is not None and seconds > 0:  # read once registered: no read before
        job = services.waiter.until_ended(services.jobs, job_id, seconds)
    else:
        job = services.jobs.get(job_id)
    return _job_response(job, 200, seconds)


def _checked_job_ids() -> list[str]:
    """The `ids` asked for, each once, in their order; 422 naming the ones that cannot be ids."""
    job_ids = list(dict.fromkeys(i for v in request.args.getlist("ids") for i in v.split(",") if i))
    g.jobs = len(job_ids)
    if not 1 <= len(job_ids) <= MAX_IDS_PER_POLL:
        raise InvalidInput(
            f"ids must name 1 to {MAX_IDS_PER_POLL} jobs, comma-separated",
            details=[{"field": "ids", "message": f"got {len(job_ids)}"}],
        )
    wrong = [
        {"field": f"ids[{i}]", "message": f"not a job id: {job_id[:40]!r}"}
        for i, job_id in enumerate(job_ids)
        if not JOB_ID.fullmatch(job_id)
    ]
    if wrong:
        raise InvalidInput("ids must be job ids (32 hexadecimal digits)", details=wrong[:100])
    return job_ids


@bp.get("/jobs")
@documented(
    responses={200: JobList, **describe_error_statuses(401, 422, 503)},
    parameters=[IDS_PARAMETER, WAIT_PARAMETER],
    headers={"Prefer": PREFER_HEADER},
)
def poll_many() -> ResponseReturnValue:
    """Return several jobs at once, as a client collecting the jobs it submitted; `wait` holds
    the answer until every one of them has ended (or the wait runs out)."""
    job_ids = _checked_job_ids()
    seconds = _wait_seconds(query=True)
    services = current_services()
    if seconds is not None and seconds > 0:
        found = services.waiter.until_all_ended(services.jobs, job_ids, seconds)
    else:
        found = services.jobs.get_many(job_ids)
    jobs = [found[job_id] for job_id in job_ids if job_id in found]
    response = jsonify(
        {
            "jobs": [job.public() for job in jobs],
            "missing": [job_id for job_id in job_ids if job_id not in found],
        }
    )
    return _wait_headers(response, all(job.status.ended for job in jobs), seconds)


@bp.delete("/jobs/<job_id>")
@documented(responses={200: Job, **describe_error_statuses(401, 404, 409, 503)})
def cancel(job_id: str) -> ResponseReturnValue:
    """Cancel a queued job so that it never runs; 409 once it is running or has ended."""
    job = current_services().queue.cancel(checked_job_id(job_id))
    return jsonify(job.public())
