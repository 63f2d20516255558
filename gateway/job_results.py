"""A job's result on its own: `GET /v1/jobs/<id>/result`, as JSON pages or as a file.

`Accept` chooses: `application/json` (the default: `{"rows", "offset", "limit", "columns":
{name: values}}`, a page of `?offset=&limit=` rows, at most MAX_PAGE), the Arrow IPC stream
(`application/vnd.apache.arrow.stream`), Parquet (`application/vnd.apache.parquet`) or CSV
(`text/csv`), all of every row. The table's
columns are onnxq/models/result_table.py's. 409 until the job has succeeded. A result of more
than ONNXQ_JOB_INLINE_RESULT_ROWS rows is only here (its document links it, `result.href`),
stored as the Arrow stream the worker wrote (in the blob store, onnxq/jobs/blobs.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, Field

from gateway.jobs import checked_job_id
from gateway.openapi import documented
from gateway.responses import describe_error_statuses
from gateway.services import current_services
from onnxq.errors import InvalidInput, JobExpired, NotAcceptable, ResultNotReady
from onnxq.models.file_inputs import ARROW_STREAM, CSV, PARQUET
from onnxq.models.parquet_writer import parquet_bytes
from onnxq.models.result_table import (
    arrow_stream,
    csv_text,
    json_values,
    read_arrow,
    result_columns,
)

bp = Blueprint("job_results", __name__, url_prefix="/v1")
JSON = "application/json"
OFFERED = [JSON, ARROW_STREAM, PARQUET, CSV]
MAX_PAGE = 100_000
PAGE_QUERY = [
    {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer",
     "minimum": 0}, "description": "First row of a JSON page."},
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer",
     "minimum": 1, "maximum": MAX_PAGE}, "description": "Rows of a JSON page."},
]  # fmt: skip


class ResultPage(BaseModel):
    """A page of a job's result: each column's values for rows offset .. offset + limit."""

    rows: int = Field(description="rows in the whole result")
    offset: int
    limit: int = Field(description="rows in this page")
    columns: dict[str, list[Any]]


@bp.get("/jobs/<job_id>/result")
@documented(responses={200: ResultPage, **describe_error_statuses(401, 404, 406, 409, 422, 503)},
            parameters=PAGE_QUERY)  # fmt: skip
def result(job_id: str) -> ResponseReturnValue:
    """A succeeded job's result: JSON pages, or every row as an Arrow stream or CSV."""
    job = current_services().jobs.get(checked_job_id(job_id))
    if job.status.value != "succeeded" or job.result is None:
        raise ResultNotReady(job.job_id, job.status.value)
    kind = request.accept_mimetypes.best_match(OFFERED) if request.accept_mimetypes else JSON
    if kind is None:
        detail = {"loc": ["header", "Accept"], "message": "none of those"}
        raise NotAcceptable(f"the result is served as {', '.join(OFFERED)}", [detail])
    stored = None
    if "href" in job.result:  # a large result, kept apart as an Arrow stream
        found = current_services().jobs.result_file(job.job_id)
        if found is None:
            raise JobExpired(job.job_id, current_services().settings.job_ttl_seconds)
        if kind == ARROW_STREAM:  # the stored file as it is (sendfile where the server can)
            return send_file(found, mimetype=ARROW_STREAM, conditional=False, etag=False)
        with found:
            stored = found.read()
    columns = read_arrow(stored) if stored is not None else result_columns(job.result)
    rows = len(next(iter(columns.values()))) if columns else 0
    if kind == ARROW_STREAM:
        return Response(arrow_stream(columns), mimetype=ARROW_STREAM)
    if kind == PARQUET:
        return Response(parquet_bytes(columns), mimetype=PARQUET)
    if kind == CSV:
        return Response(csv_text(columns), mimetype=CSV)
    offset, limit = _page(rows)
    page = {name: json_values(values[offset : offset + limit]) for name, values in columns.items()}
    return jsonify({"rows": rows, "offset": offset, "limit": limit, "columns": page})


def _page(rows: int) -> tuple[int, int]:
    details = []
    values = {}
    for name, default, low, high in (("offset", 0, 0, None), ("limit", MAX_PAGE, 1, MAX_PAGE)):
        text = request.args.get(name, str(default))
        value = int(text) if text.isdigit() else -1
        if value < low or (high is not None and value > high):
            bound = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
            details.append({"loc": ["query", name], "message": f"{name} is {bound}"})
        values[name] = value
    if details:
        raise InvalidInput(f"{len(details)} problem(s) in the query", details)
    return values["offset"], min(values["limit"], max(rows - values["offset"], 0))
