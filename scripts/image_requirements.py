"""Print the pinned requirements one container image installs, one per line.

    python scripts/image_requirements.py gateway|worker|flower|demo-model [pyproject.toml]

They are pyproject.toml's `[project] dependencies`, pins unchanged, minus the packages that
image's processes never import (LEFT_OUT, with the reason). The flower image takes only Celery's
packages and the `monitoring` extra; the demo-model build stage, the worker's set and the `export`
extra. pyproject.toml stays the one place versions are pinned; tests/scripts/
test_image_requirements.py checks that neither process imports what its image leaves out.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

LEFT_OUT: dict[str, dict[str, str]] = {
    "gateway": {
        "pandas": "only drift/ reads logs with pandas, and drift runs in the worker",
    },
    "worker": {
        "flask": "HTTP is served by the gateway",
        "flask-swagger-ui": "the /docs page is served by the gateway",
        "gunicorn": "the worker is a Celery process, not an HTTP server",
        "gevent": "only the gateway's gunicorn workers are gevent workers",
        "werkzeug": "flask's, imported by the gateway only",
        "grpcio": "the gRPC service runs from the gateway's image",
        "pysnappy": "Parquet files are read and written by the gateway",
    },
}
# Flower watches the broker with Celery alone; it never loads onnxq's code.
FLOWER_KEEPS = ("celery", "kombu", "redis")
FLOWER_EXTRA = "monitoring"
# The demo model is trained in a build stage: the worker's set plus the export extra.
DEMO_MODEL_EXTRA = "export"

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical_name(requirement: str) -> str:
    """The PEP 503 name of a requirement string: `Flask_Swagger.UI==1` -> `flask-swagger-ui`."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def image_requirements(image: str, pyproject: Path) -> list[str]:
    """The dependency strings of pyproject.toml that `image` installs, in pyproject order."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    dependencies = project["dependencies"]
    if image == "flower":
        kept = [r.strip() for r in dependencies if canonical_name(r) in FLOWER_KEEPS]
        return kept + project["optional-dependencies"][FLOWER_EXTRA]
    if image == "demo-model":
        extra = project["optional-dependencies"][DEMO_MODEL_EXTRA]
        return image_requirements("worker", pyproject) + extra
    if image not in LEFT_OUT:
        known = ", ".join(sorted([*LEFT_OUT, "flower", "demo-model"]))
        raise ValueError(f"unknown image {image!r}; known: {known}")
    names = {canonical_name(requirement) for requirement in dependencies}
    # A stale entry (a package renamed or dropped) must fail the build, not pass silently.
    unknown = sorted(set(LEFT_OUT[image]) - names)
    if unknown:
        raise ValueError(f"LEFT_OUT[{image!r}] names packages not in pyproject.toml: {unknown}")
    return [
        requirement.strip()
        for requirement in dependencies
        if canonical_name(requirement) not in LEFT_OUT[image]
    ]


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    pyproject = Path(argv[1]) if len(argv) == 2 else Path("pyproject.toml")
    print("\n".join(image_requirements(argv[0], pyproject)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
