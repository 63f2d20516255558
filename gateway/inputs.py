"""Reading a request: its JSON body, and the model version it addresses."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import g, request
from werkzeug.exceptions import UnsupportedMediaType

from gateway.body import read_body
from gateway.services import current_services
from onnxq.errors import InvalidInput
from onnxq.models.session import OnnxModel


class DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook: `{"version": 1, "version": 2}` is ambiguous, so it is refused."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return found


def json_body() -> Any:
    """Return the parsed JSON body; 415 for another content type or a body that is not JSON,
    422 for an object that names a key twice."""
    if not request.is_json:
        raise UnsupportedMediaType("send the body as JSON with 'Content-Type: application/json'")
    cached = g.get("json_body", _UNREAD)
    if cached is not _UNREAD:
        return cached
    try:
        body = json.loads(read_body(), object_pairs_hook=_refuse_duplicates)
    except DuplicateKey as exc:
        raise InvalidInput(
            f"the request body names the key {exc.key!r} more than once",
            details=[{"field": exc.key, "message": "duplicate key: which value is meant?"}],
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnsupportedMediaType("the request body is not valid JSON") from exc
    except RecursionError:
        # json nests by recursion: '[' * 100000 must be a 4xx, not a crash.
        raise UnsupportedMediaType("the request body is nested too deeply to be read") from None
    g.json_body = body
    return body


_UNREAD = object()


def row_count(body: Any) -> int:
    """How many rows a body carries, before any validation (limits are checked first)."""
    instances = body.get("instances") if isinstance(body, dict) else None
    return len(instances) if isinstance(instances, list) else 0


def body_fingerprint(name: str, body: Any) -> str:
    """A digest of what a request asks for, to recognise a repeated submit."""
    canonical = json.dumps([name, body], sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def model_for(name: str, version: int | None) -> OnnxModel:
    """Load the addressed model version (the default when none is pinned) and note it for logs."""
    model = current_services().repository.get(name, version)
    g.model, g.version = model.name, model.version
    return model
