"""A job submitted as a file (onnxq/models/file_inputs.py): its rows in the body, the rest in the
query: `?version=`, `?callback_url=`, `?extra=ignore`."""

from __future__ import annotations

import hashlib

import numpy as np
from flask import g, request

from gateway.body import receive_body
from gateway.inputs import model_for
from gateway.services import current_services
from onnxq.errors import InvalidInput
from onnxq.jobs.blobs import UPLOAD
from onnxq.jobs.new_rows import NewJobRows, RowsInBlob
from onnxq.jobs.queue import new_job_id
from onnxq.models.file_inputs import file_rows
from onnxq.models.inputs import check_row_limit
from onnxq.models.session import OnnxModel

QUERY = ("version", "callback_url", "extra")
FILE_LIMIT = "ONNXQ_JOB_FILE_MAX_BYTES"
FILE_CHUNK_BYTES = 1024 * 1024  # a file body is read this much at a time (JSON's: 64 KiB)
# The OpenAPI description of those (a JSON body carries version and callback_url itself).
FILE_QUERY = [
    {"name": "version", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1},
     "description": "A file body's model version (a JSON body says it in `version`)."},
    {"name": "callback_url", "in": "query", "required": False,
     "schema": {"type": "string", "format": "uri"},
     "description": "A file body's completion callback."},
    {"name": "extra", "in": "query", "required": False,
     "schema": {"type": "string", "enum": ["reject", "ignore"]},
     "description": "Columns of a file that are not features: a 422 (reject) or left out."},
]  # fmt: skip


def file_job(
    name: str, job_id: str, with_fingerprint: bool
) -> tuple[OnnxModel, np.ndarray | RowsInBlob, str | None, str]:
    """The model, the checked rows, the callback URL and (for an idempotent submit) the
    fingerprint of a file submit of job `job_id`.

    The body goes to the blob store as it arrives (ONNXQ_JOB_FILE_MAX_BYTES), is read from there
    mapped, not copied, and is removed once its rows are checked, whatever the outcome. The rows
    of a large file go to the job's rows blob as they are checked (onnxq/jobs/new_rows.py)."""
    unknown = sorted(set(request.args) - set(QUERY))
    extra = request.args.get("extra", "reject")
    details = [{"loc": ["query", key], "message": "unknown parameter"} for key in unknown]
    if extra not in ("reject", "ignore"):
        details.append({"loc": ["query", "extra"], "message": "extra is 'reject' or 'ignore'"})
    version = request.args.get("version")
    if version is not None and (not version.isdigit() or int(version) < 1):
        details.append({"loc": ["query", "version"], "message": "a version is an integer >= 1"})
    if details:
        raise InvalidInput(f"{len(details)} problem(s) in the query", details)
    services = current_services()
    callback_url = request.args.get("callback_url") or None
    if callback_url is not None:
        services.destinations.check_url(callback_url)  # 422 naming the rule
    model = model_for(name, int(version) if version is not None else None)
    upload, blobs = new_job_id(), services.blobs  # the body's blob, named like a job's
    digest = hashlib.sha256()
    for part in (name, request.mimetype, sorted(request.args.items(multi=True))):
        digest.update(repr(part).encode())
    width, limit = len(model.manifest.features), services.settings.job_file_max_rows
    with NewJobRows(blobs, job_id, width, services.jobs.inline_rows) as rows:
        try:
            with blobs.writer(upload, UPLOAD) as out:

                def write(chunk: bytes) -> None:
                    out.write(chunk)
                    if with_fingerprint:  # hashing a file costs ~1 ms a MB
                        digest.update(chunk)

                receive_body(write, services.settings.job_file_max_bytes, FILE_LIMIT,
                             FILE_CHUNK_BYTES)  # fmt: skip
            data = blobs.read(upload, UPLOAD) or b""

            def add(block: np.ndarray) -> None:
                check_row_limit(rows.rows + len(block), limit)  # 413 before more is written
                rows.add(block)

            file_rows(request.mimetype, data, model.manifest, add, extra)
        finally:
            blobs.delete(upload, UPLOAD)
        checked = rows.finish()
    g.rows = rows.rows
    return model, checked, callback_url, digest.hexdigest() if with_fingerprint else ""
