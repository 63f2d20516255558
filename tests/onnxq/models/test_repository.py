"""The model repository: finds versions on disk, verifies them, and serves warm sessions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_breast_cancer

from onnxq.errors import InvalidModel, ModelNotFound, ModelNotReady
from onnxq.models.manifest import MODEL_FILE, Manifest, VersionPaths
from onnxq.models.repository import ModelRepository
from onnxq.registry.demo import DEMO_MODEL_NAME


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return load_breast_cancer().data[:64].astype(np.float32)


@pytest.fixture
def copied_repository(demo_model_dir: Path, tmp_path: Path) -> ModelRepository:
    """A private copy of the demo repository that a test may damage or add to."""
    root = tmp_path / "models"
    shutil.copytree(demo_model_dir, root)
    return ModelRepository(root)


def test_the_demo_model_is_listed_with_its_only_version(demo_repository: ModelRepository) -> None:
    assert demo_repository.names() == [DEMO_MODEL_NAME]
    assert demo_repository.versions(DEMO_MODEL_NAME) == [1]
    assert demo_repository.default_version(DEMO_MODEL_NAME) == 1


def test_a_versions_files_are_named_in_one_place(demo_repository: ModelRepository) -> None:
    paths = demo_repository.paths(DEMO_MODEL_NAME, 1)
    assert paths.directory == demo_repository.root / DEMO_MODEL_NAME / "1"
    assert [path.name for path in (paths.model, paths.manifest, paths.profile)] == [
        "model.onnx",
        "manifest.json",
        "profile.json",
    ]
    assert all(path.is_file() for path in (paths.model, paths.manifest, paths.profile))
    assert paths == VersionPaths.of(demo_repository.root, DEMO_MODEL_NAME, 1)
    assert demo_repository.get(DEMO_MODEL_NAME, 1).directory == paths.directory
    for name, version in (("../etc", 1), (DEMO_MODEL_NAME, 0)):
        with pytest.raises(ModelNotFound):
            demo_repository.paths(name, version)


def test_a_missing_root_directory_holds_no_models(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "absent")

    assert repository.names() == []
    assert repository.versions("anything") == []


def test_get_returns_a_ready_model_whose_predictions_equal_onnxruntime(
    demo_repository: ModelRepository, demo_model_dir: Path, rows: np.ndarray
) -> None:
    model = demo_repository.get(DEMO_MODEL_NAME)

    result = model.predict(rows)

    # One intra-op thread, like the repository's default SessionConfig: the tree ensemble
    # sums in a thread-dependent order, so more threads can differ in the last bit.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(demo_model_dir / DEMO_MODEL_NAME / "1" / MODEL_FILE),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    labels, probabilities = session.run(["label", "probabilities"], {"input": rows})
    assert model.ready
    assert demo_repository.ready
    assert (model.name, model.version) == (DEMO_MODEL_NAME, 1)
    assert result.labels == labels.tolist()
    # Probabilities travel as decimals; read back as float32 they are bit-for-bit ORT's output.
    returned = np.array(result.probabilities, dtype=np.float32)
    assert returned.shape == probabilities.shape
    assert returned.tobytes() == probabilities.tobytes()
    assert result.classes == [0, 1]


def test_probabilities_are_the_shortest_decimals_of_their_float32_values(
    demo_repository: ModelRepository, rows: np.ndarray
) -> None:
    result = demo_repository.get(DEMO_MODEL_NAME).predict(rows)

    values = [value for row in result.probabilities for value in row]
    assert all(type(value) is float for value in values)
    assert [repr(value) for value in values] == [str(np.float32(value)) for value in values]


def test_get_loads_a_version_once_and_then_reuses_it(demo_repository: ModelRepository) -> None:
    assert not demo_repository.ready

    first = demo_repository.get(DEMO_MODEL_NAME)

    assert demo_repository.get(DEMO_MODEL_NAME, 1) is first
    assert demo_repository.load_defaults() == [first]


def test_an_unknown_model_is_not_found(demo_repository: ModelRepository) -> None:
    with pytest.raises(ModelNotFound) as caught:
        demo_repository.get("no-such-model")

    assert caught.value.status_code == 404
    assert caught.value.name == "no-such-model"


def test_an_unknown_version_of_a_known_model_is_not_found(
    demo_repository: ModelRepository,
) -> None:
    with pytest.raises(ModelNotFound) as caught:
        demo_repository.get(DEMO_MODEL_NAME, 7)

    assert caught.value.version == 7


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "..", ".", "a..b", "/etc", "", ".hidden", "x" * 65, "a b"]
)
def test_a_name_that_could_leave_the_repository_is_not_found(
    demo_repository: ModelRepository, name: str
) -> None:
    with pytest.raises(ModelNotFound):
        demo_repository.get(name)
    with pytest.raises(ModelNotFound):
        demo_repository.get(name, 1)
    with pytest.raises(ModelNotFound):
        demo_repository.versions(name)


def test_a_traversal_name_cannot_reach_a_real_model_outside_its_directory(
    copied_repository: ModelRepository,
) -> None:
    # <root>/nested/../breast-cancer exists on disk, but the name must still be refused.
    (copied_repository.root / "nested").mkdir()

    with pytest.raises(ModelNotFound):
        copied_repository.get(f"nested/../{DEMO_MODEL_NAME}", 1)


def test_a_model_file_changed_after_writing_is_refused_for_its_checksum(
    copied_repository: ModelRepository,
) -> None:
    path = copied_repository.root / DEMO_MODEL_NAME / "1" / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(InvalidModel) as caught:
        copied_repository.get(DEMO_MODEL_NAME)

    assert "sha256" in caught.value.message
    assert "does not match its manifest" in caught.value.message
    assert not copied_repository.ready


def test_a_missing_model_file_is_refused(copied_repository: ModelRepository) -> None:
    (copied_repository.root / DEMO_MODEL_NAME / "1" / MODEL_FILE).unlink()

    with pytest.raises(InvalidModel, match="is missing"):
        copied_repository.get(DEMO_MODEL_NAME)


def test_an_unreadable_manifest_is_refused(copied_repository: ModelRepository) -> None:
    (copied_repository.root / DEMO_MODEL_NAME / "1" / "manifest.json").write_text("{not json")

    with pytest.raises(InvalidModel, match="not a valid manifest"):
        copied_repository.get(DEMO_MODEL_NAME)


def test_a_manifest_for_another_version_is_refused(copied_repository: ModelRepository) -> None:
    model_dir = copied_repository.root / DEMO_MODEL_NAME
    shutil.copytree(model_dir / "1", model_dir / "2")

    with pytest.raises(InvalidModel, match="holds a manifest for"):
        copied_repository.get(DEMO_MODEL_NAME, 2)


def test_add_version_writes_a_new_version_that_becomes_the_default(
    copied_repository: ModelRepository, rows: np.ndarray
) -> None:
    version_1 = copied_repository.root / DEMO_MODEL_NAME / "1"
    manifest = Manifest.read(version_1)

    target = copied_repository.add_version(
        manifest.model_copy(update={"version": 2}), (version_1 / MODEL_FILE).read_bytes()
    )

    assert target == copied_repository.root / DEMO_MODEL_NAME / "2"
    assert copied_repository.versions(DEMO_MODEL_NAME) == [1, 2]
    assert copied_repository.default_version(DEMO_MODEL_NAME) == 2
    assert copied_repository.get(DEMO_MODEL_NAME).version == 2
    assert sorted(entry.name for entry in target.parent.iterdir()) == ["1", "2"]


def test_add_version_refuses_to_overwrite_an_existing_version(
    copied_repository: ModelRepository,
) -> None:
    version_1 = copied_repository.root / DEMO_MODEL_NAME / "1"
    manifest = Manifest.read(version_1)
    original = (version_1 / MODEL_FILE).read_bytes()

    with pytest.raises(InvalidModel, match="already exists"):
        copied_repository.add_version(manifest, b"not the original model")

    assert (version_1 / MODEL_FILE).read_bytes() == original
    assert sorted(entry.name for entry in version_1.parent.iterdir()) == ["1"]


def test_a_session_created_before_fork_is_refused_in_the_child(
    demo_repository: ModelRepository, rows: np.ndarray
) -> None:
    model = demo_repository.get(DEMO_MODEL_NAME)

    pid = os.fork()
    if pid == 0:  # child: report through the exit code only, never return into pytest
        code = 3
        try:
            model.predict(rows)
            code = 1
        except ModelNotReady:
            code = 0
        except BaseException:
            code = 2
        finally:
            os._exit(code)

    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "0 = refused, 1 = predicted, 2 = other error"
    assert len(model.predict(rows).labels) == len(rows)  # the parent's session still works


def test_a_stray_directory_with_a_double_dot_name_does_not_break_the_listing(
    copied_repository: ModelRepository,
) -> None:
    (copied_repository.root / "old..backup").mkdir()

    assert copied_repository.names() == [DEMO_MODEL_NAME]
