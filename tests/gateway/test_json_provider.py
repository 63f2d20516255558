"""The gateway's JSON (orjson) reads as Flask's default provider's does."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from gateway.json_provider import OrjsonProvider


@dataclasses.dataclass
class Point:
    x: float
    y: str


VALUE = {
    "z": [1, 2.5, -0.98, None, True],
    "a": {"nested": "text", "when": datetime(2026, 12, 1, 12, 0, tzinfo=UTC)},
    "id": uuid.UUID(int=7),
    "point": Point(1.5, "p"),
}


def test_answers_are_byte_for_byte_what_flasks_provider_writes() -> None:
    app = Flask(__name__)
    ours, flasks = OrjsonProvider(app), DefaultJSONProvider(app)
    with app.app_context():
        mine = ours.response(VALUE)
        theirs = flasks.response(VALUE)
        assert mine.get_data() == theirs.get_data()
        assert mine.mimetype == theirs.mimetype == "application/json"
        assert ours.dumps(VALUE) == flasks.dumps(VALUE, separators=(",", ":"))
        assert ours.loads(ours.dumps({"k": [1, 2]})) == {"k": [1, 2]}


def test_non_ascii_text_is_written_as_utf_8_and_reads_back_the_same() -> None:
    app = Flask(__name__)
    with app.app_context():
        body = OrjsonProvider(app).response({"name": "é ünïcode"}).get_data()
    assert body == '{"name":"é ünïcode"}\n'.encode()
    assert DefaultJSONProvider(app).loads(body) == {"name": "é ünïcode"}
