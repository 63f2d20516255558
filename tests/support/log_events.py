"""The JSON log events in a process's output (structlog writes one JSON object per line)."""

from __future__ import annotations

import json
from typing import Any


def json_events(output: str) -> list[dict[str, Any]]:
    """Every line of `output` that is a JSON object, parsed; other lines are skipped.

    A line still being written (the process is running) does not parse and is skipped too.
    """
    found = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            found.append(event)
    return found


def events(output: str, name: str, **fields: Any) -> list[dict[str, Any]]:
    """The events called `name` in `output` whose `fields` have exactly the given values."""
    return [
        event
        for event in json_events(output)
        if event.get("event") == name
        and all(event.get(key) == value for key, value in fields.items())
    ]
