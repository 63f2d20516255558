"""`.env.example` is the complete template: every setting, and every variable compose reads."""

from __future__ import annotations

import re
from pathlib import Path

from onnxq.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
# `NAME=` lines, commented out or not.
LISTED = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def listed_variables() -> set[str]:
    return set(LISTED.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))


def test_every_setting_is_listed_in_env_example() -> None:
    settings = {f"ONNXQ_{name.upper()}" for name in Settings.model_fields}
    assert sorted(settings - listed_variables()) == [], "add them to .env.example"


def test_every_variable_docker_compose_interpolates_is_listed_in_env_example() -> None:
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose))
    assert interpolated, "docker-compose.yml interpolates nothing: the pattern is wrong"
    assert sorted(interpolated - listed_variables()) == [], "add them to .env.example"


def test_env_example_holds_no_key() -> None:
    keys = re.findall(r"^ONNXQ_API_KEYS=(.*)$", ENV_EXAMPLE.read_text(encoding="utf-8"), re.M)
    assert keys == [""]
