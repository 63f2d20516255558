"""Fixtures for the onnxq unit tests: the demo model, built once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from onnxq.models.manifest import Manifest
from onnxq.registry.demo import DEMO_MODEL_NAME


@pytest.fixture(scope="session")
def demo_manifest(demo_model_dir: Path) -> Manifest:
    return Manifest.read(demo_model_dir / DEMO_MODEL_NAME / "1")
