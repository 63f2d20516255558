"""The default version (models/<name>/DEFAULT) and what loading refuses, in a running process."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from onnxq.errors import InvalidModel, ModelNotFound
from onnxq.models import repository as repository_module
from onnxq.models.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from onnxq.models.repository import DEFAULT_FILE, ModelRepository
from onnxq.models.session import OnnxModel
from onnxq.registry.demo import DEMO_MODEL_NAME

ROWS = np.zeros((2, 30), dtype=np.float32)


def rewrite(directory: Path, data: bytes, **changes: object) -> None:
    """Replace a version's model file and make its manifest vouch for the new bytes."""
    (directory / MODEL_FILE).write_bytes(data)
    manifest = Manifest.read(directory)
    update = {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data), **changes}
    manifest.model_copy(update=update).write(directory)


def test_without_a_default_file_the_highest_version_is_the_default(
    two_versions: ModelRepository,
) -> None:
    assert two_versions.pinned_default(DEMO_MODEL_NAME) is None
    assert two_versions.default_version(DEMO_MODEL_NAME) == 2


def test_a_running_repository_sees_a_new_default_without_restart(
    two_versions: ModelRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert two_versions.get(DEMO_MODEL_NAME).version == 2
    monkeypatch.setattr(repository_module, "DEFAULT_CACHE_SECONDS", 0.0)

    ModelRepository(two_versions.root).set_default(DEMO_MODEL_NAME, 1)  # another process

    assert two_versions.get(DEMO_MODEL_NAME).version == 1
    assert two_versions.get(DEMO_MODEL_NAME, 2).version == 2  # a pinned version is still served


def test_the_default_file_is_replaced_whole_and_leaves_no_staging_file(
    two_versions: ModelRepository,
) -> None:
    two_versions.set_default(DEMO_MODEL_NAME, 1)
    two_versions.set_default(DEMO_MODEL_NAME, 2)

    directory = two_versions.root / DEMO_MODEL_NAME
    assert (directory / DEFAULT_FILE).read_text() == "2\n"
    assert sorted(path.name for path in directory.iterdir()) == ["1", "2", DEFAULT_FILE]


def test_a_default_that_cannot_be_loaded_leaves_the_previous_default_served(
    two_versions: ModelRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_versions.set_default(DEMO_MODEL_NAME, 1)
    assert two_versions.get(DEMO_MODEL_NAME).version == 1
    monkeypatch.setattr(repository_module, "DEFAULT_CACHE_SECONDS", 0.0)
    (two_versions.root / DEMO_MODEL_NAME / "2" / MODEL_FILE).write_bytes(b"tampered")
    (two_versions.root / DEMO_MODEL_NAME / DEFAULT_FILE).write_text("2\n")  # by hand, unchecked

    assert two_versions.get(DEMO_MODEL_NAME).version == 1
    assert len(two_versions.get(DEMO_MODEL_NAME).predict(ROWS).labels) == 2
    with pytest.raises(InvalidModel):
        ModelRepository(two_versions.root).get(DEMO_MODEL_NAME)  # a new process has no fallback


def test_a_refused_default_is_not_read_again_on_every_request(
    two_versions: ModelRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_versions.set_default(DEMO_MODEL_NAME, 1)
    assert two_versions.get(DEMO_MODEL_NAME).version == 1
    (two_versions.root / DEMO_MODEL_NAME / "2" / MODEL_FILE).write_bytes(b"tampered")
    loads: list[int] = []
    original_load = OnnxModel.load

    def counted_load(model: OnnxModel) -> None:
        loads.append(model.version)
        original_load(model)

    monkeypatch.setattr(OnnxModel, "load", counted_load)
    two_versions.set_default(DEMO_MODEL_NAME, 2)

    served = [two_versions.get(DEMO_MODEL_NAME).version for _ in range(20)]

    assert served == [1] * 20
    assert loads == [2]  # one attempt, then version 1 straight away until the next re-read


def test_a_default_file_naming_a_missing_version_is_refused(two_versions: ModelRepository) -> None:
    (two_versions.root / DEMO_MODEL_NAME / DEFAULT_FILE).write_text("7\n")

    with pytest.raises(InvalidModel, match="names version 7"):
        two_versions.default_version(DEMO_MODEL_NAME)


@pytest.mark.parametrize("text", ["two", "-1", "0", "../1", ""])
def test_a_default_file_that_is_not_a_version_number_is_refused(
    two_versions: ModelRepository, text: str
) -> None:
    (two_versions.root / DEMO_MODEL_NAME / DEFAULT_FILE).write_text(text)

    with pytest.raises(InvalidModel, match="must hold a version number"):
        two_versions.default_version(DEMO_MODEL_NAME)


def test_a_pickle_is_refused_at_load_even_when_its_manifest_vouches_for_it(
    two_versions: ModelRepository,
) -> None:
    rewrite(two_versions.root / DEMO_MODEL_NAME / "2", pickle.dumps({"not": "a model"}))

    with pytest.raises(InvalidModel, match="is a Python pickle, not an ONNX model"):
        two_versions.get(DEMO_MODEL_NAME, 2)


def test_a_manifest_pointing_outside_its_version_directory_is_refused(
    two_versions: ModelRepository,
) -> None:
    directory = two_versions.root / DEMO_MODEL_NAME / "2"
    text = (directory / MANIFEST_FILE).read_text().replace('"model.onnx"', '"../1/model.onnx"')
    (directory / MANIFEST_FILE).write_text(text)

    with pytest.raises(InvalidModel, match="not a valid manifest"):
        two_versions.get(DEMO_MODEL_NAME, 2)


def test_a_version_directory_that_links_outside_the_repository_is_refused(
    two_versions: ModelRepository, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    shutil.move(two_versions.root / DEMO_MODEL_NAME / "2", outside)
    os.symlink(outside, two_versions.root / DEMO_MODEL_NAME / "2")

    with pytest.raises(InvalidModel, match="leads outside the model repository"):
        two_versions.get(DEMO_MODEL_NAME, 2)


@pytest.mark.parametrize("version", [0, -1, True])
def test_a_version_that_is_not_a_positive_integer_is_not_found(
    two_versions: ModelRepository, version: object
) -> None:
    with pytest.raises(ModelNotFound):
        two_versions.get(DEMO_MODEL_NAME, version)  # type: ignore[arg-type]
