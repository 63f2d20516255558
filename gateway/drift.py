"""The latest drift report of a model, as JSON or as its HTML page.

Reports are files the scheduled drift check (worker) or `onnxq drift` wrote under
`<state_dir>/drift/<model>/`; the gateway only reads them (a shared volume in compose).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue

from drift.psi import DriftReport
from drift.report_files import LATEST_HTML, LATEST_JSON, report_directory
from gateway.openapi import documented
from gateway.responses import describe_error_statuses
from gateway.services import current_services
from onnxq.errors import DriftReportNotFound, InvalidInput, ModelNotFound
from onnxq.settings import Settings

bp = Blueprint("drift", __name__, url_prefix="/v1/models")

FORMATS = {"json": (LATEST_JSON, "application/json"), "html": (LATEST_HTML, "text/html")}


@bp.get("/<name>/drift")
@documented(responses={200: DriftReport, **describe_error_statuses(401, 404, 422)})
def get_drift(name: str) -> ResponseReturnValue:
    """Return the model's latest drift report (JSON; `?format=html` for the page)."""
    choice = request.args.get("format", "json")
    if choice not in FORMATS:
        raise InvalidInput(
            "format must be 'json' or 'html'",
            [{"loc": ["query", "format"], "message": f"unknown format '{choice}'"}],
        )
    if not current_services().repository.versions(name):
        raise ModelNotFound(name)
    settings: Settings = current_app.config["SETTINGS"]
    filename, mimetype = FORMATS[choice]
    path = report_directory(settings.state_dir, name) / filename
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise DriftReportNotFound(name) from None
    charset = "; charset=utf-8" if choice == "html" else ""
    return Response(body, content_type=f"{mimetype}{charset}")
