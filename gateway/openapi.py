"""OpenAPI 3.1, generated from the pydantic models the views validate and answer with.

Views declare what they take and return with `@documented(...)`; `build_spec`
walks the URL map, so a route cannot exist undocumented without a test noticing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import flask_swagger_ui
from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory
from flask.typing import ResponseReturnValue
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from werkzeug.routing import Rule

import onnxq

bp = Blueprint("openapi", __name__)

SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).parent / "dist"
REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class OperationDoc:
    body: type[BaseModel] | None
    responses: dict[int, type[BaseModel]]
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    public: bool = False
    query: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # media types the body may be besides JSON


def documented(
    *,
    responses: dict[int, type[BaseModel]],
    body: type[BaseModel] | None = None,
    headers: dict[str, dict[str, Any]] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    public: bool = False,
    files: tuple[str, ...] = (),
) -> Any:
    """Attach request and response models to a view for the OpenAPI document."""

    def mark(view: Any) -> Any:
        view.openapi = OperationDoc(
            body, dict(responses), dict(headers or {}), public, list(parameters or []), list(files)
        )
        return view

    return mark


def _examples(app: Flask) -> dict[str, Any]:
    """Real values to show (and for schemathesis to try first): the first model, its rows."""
    services = app.extensions.get("onnxq")
    names = services.repository.names() if services is not None else []
    if not names:
        return {}
    manifest = services.repository.manifest(names[0])
    return {
        "name": names[0],
        "version": manifest.version,
        "instances": [[0.5] * len(manifest.features)],
    }


def _path_and_parameters(rule: Rule, examples: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    path, parameters = rule.rule, []
    for argument in sorted(rule.arguments):
        converter = rule._converters[argument]
        is_int = type(converter).__name__ == "IntegerConverter"
        for prefix in ("int:", "path:", ""):
            path = path.replace(f"<{prefix}{argument}>", "{" + argument + "}")
        parameter: dict[str, Any] = {
            "name": argument,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0} if is_int else {"type": "string"},
        }
        if argument in examples:
            parameter["example"] = str(examples[argument]) if not is_int else examples[argument]
        parameters.append(parameter)
    return path, parameters


def build_spec(app: Flask) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of every documented route of `app`."""
    operations: list[tuple[str, str, Rule, Any, OperationDoc]] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        view = app.view_functions[rule.endpoint]
        doc = getattr(view, "openapi", None)
        if doc is None:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations.append((method.lower(), rule.rule, rule, view, doc))

    models: dict[tuple[type[BaseModel], str], None] = {}
    for *_, doc in operations:
        if doc.body is not None:
            models[(doc.body, "validation")] = None
        for model in doc.responses.values():
            models[(model, "serialization")] = None
    refs, definitions = models_json_schema(list(models), ref_template=REF)
    examples = _examples(app)

    paths: dict[str, dict[str, Any]] = {}
    seen_ids: set[str] = set()
    for method, _, rule, view, doc in operations:
        path, parameters = _path_and_parameters(rule, examples)
        operation_id = f"{rule.endpoint.replace('.', '_')}_{method}"
        if operation_id in seen_ids:
            operation_id += f"_{len(seen_ids)}"
        seen_ids.add(operation_id)
        summary = (view.__doc__ or "").strip().splitlines()[0] if view.__doc__ else ""
        for name, header in doc.headers.items():
            parameters.append({"name": name, "in": "header", "required": False, **header})
        parameters += doc.query
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "summary": summary,
            "tags": [rule.endpoint.split(".", 1)[0]],
            "parameters": parameters,
            "responses": {
                str(code): {
                    "description": HTTPStatus(code).phrase,
                    "content": {"application/json": {"schema": refs[(model, "serialization")]}},
                }
                for code, model in sorted(doc.responses.items())
            },
        }
        if doc.public:
            operation["security"] = []
        if doc.body is not None:
            content: dict[str, Any] = {"schema": refs[(doc.body, "validation")]}
            if "instances" in doc.body.model_fields and "instances" in examples:
                content["example"] = {"instances": examples["instances"]}
            bodies = {"application/json": content}
            for kind in doc.files:  # rows as a file instead (onnxq/models/file_inputs.py)
                bodies[kind] = {"schema": {"type": "string", "format": "binary"}}
            operation["requestBody"] = {"required": True, "content": bodies}
        paths.setdefault(path, {})[method] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "onnxq",
            "version": onnxq.__version__,
            "description": "Serve ONNX models: synchronous predictions, queued jobs, and the "
            "Open Inference Protocol (V2).",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    """Return this API's OpenAPI 3.1 document."""
    spec = current_app.extensions.get("onnxq_openapi")
    if spec is None:
        spec = current_app.extensions["onnxq_openapi"] = build_spec(current_app)
    return jsonify(spec)


DOCS_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>onnxq API</title>
<link rel="stylesheet" href="docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs/static/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({spec: %s, dom_id: "#swagger-ui", deepLinking: true});
</script></body></html>
"""


@bp.get("/docs")
def docs() -> ResponseReturnValue:
    """Render the OpenAPI document with the bundled Swagger UI (no internet needed)."""
    spec = json.dumps(build_spec(current_app)).replace("</", "<\\/")
    return Response(DOCS_PAGE % spec, mimetype="text/html")


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str) -> ResponseReturnValue:
    """Serve Swagger UI's own files, shipped in the flask-swagger-ui wheel."""
    return send_from_directory(SWAGGER_UI_DIST, filename, max_age=3600)
