"""What models there are, and what each one takes and returns."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from gateway.openapi import documented
from gateway.responses import ModelDescription, ModelList, describe_error_statuses
from gateway.services import current_services
from onnxq.models.manifest import Manifest

bp = Blueprint("models", __name__, url_prefix="/v1/models")


def describe(manifest: Manifest, versions: list[int], default: int) -> dict[str, Any]:
    return {
        "name": manifest.name,
        "versions": versions,
        "default_version": default,
        "version": manifest.version,
        "task": manifest.task,
        "features": [feature.model_dump() for feature in manifest.features],
        "inputs": [tensor.model_dump() for tensor in manifest.inputs],
        "outputs": [tensor.model_dump() for tensor in manifest.outputs],
        "classes": manifest.class_labels,
        "class_names": manifest.class_names,
        "targets": manifest.targets,
        "created_at": manifest.created_at.isoformat(),
        "sha256": manifest.sha256,
        "parity": manifest.parity.model_dump(),
    }


@bp.get("")
@documented(responses={200: ModelList, **describe_error_statuses(401)})
def list_models() -> ResponseReturnValue:
    """List every model with its versions and default version."""
    repository = current_services().repository
    models = [
        {
            "name": name,
            "versions": repository.versions(name),
            "default_version": repository.default_version(name),
        }
        for name in repository.names()
    ]
    return jsonify(models=models)


@bp.get("/<name>")
@documented(responses={200: ModelDescription, **describe_error_statuses(401, 404)})
def get_model(name: str) -> ResponseReturnValue:
    """Describe a model's default version: features with dtypes, outputs, classes, parity."""
    repository = current_services().repository
    manifest = repository.manifest(name)
    return jsonify(describe(manifest, repository.versions(name), repository.default_version(name)))


@bp.get("/<name>/versions/<int:version>")
@documented(responses={200: ModelDescription, **describe_error_statuses(401, 404)})
def get_model_version(name: str, version: int) -> ResponseReturnValue:
    """Describe one version of a model."""
    repository = current_services().repository
    manifest = repository.manifest(name, version)
    return jsonify(describe(manifest, repository.versions(name), repository.default_version(name)))
