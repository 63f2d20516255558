"""`onnxq register`, `promote`, `rollback` and `models`: versions enter only validated, as ONNX."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sklearn.ensemble import RandomForestClassifier

from drift.profile import ReferenceProfile
from onnxq.models.manifest import MANIFEST_FILE, MODEL_FILE, PROFILE_FILE, Manifest
from onnxq.models.repository import DEFAULT_FILE, ModelRepository
from onnxq.registry.register import HISTORY_FILE
from tests.support.lifecycle import (
    breast_cancer,
    export_pipeline,
    fitted_pipeline,
    pickle_to,
    run_cli,
    training_csv,
    write_csv,
)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two exported models of the breast-cancer features, and the training data."""
    directory = tmp_path_factory.mktemp("exports")
    X, y = breast_cancer()
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    return {
        "pipeline": export_pipeline(directory / "pipeline") / MODEL_FILE,
        "forest": export_pipeline(directory / "forest", estimator=forest) / MODEL_FILE,
        "training": training_csv(directory),
        # rows to profile the outputs on (these models saw every row: plumbing, not statistics)
        "held_out": write_csv(directory / "held-out.csv", X.iloc[469:]),
    }


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRepository:
    root = tmp_path / "models"
    root.mkdir()  # the repository the gateway and workers serve exists before a register
    monkeypatch.setenv("ONNXQ_MODEL_DIR", str(root))
    return ModelRepository(root)


def register(name: str, model: Path, exports: dict[str, Path], capsys, *extra: str):
    return run_cli(
        "register", name, model, "--reference", exports["training"], *extra, capsys=capsys
    )


def test_register_writes_the_model_its_manifest_and_its_drift_profile(
    repository: ModelRepository, exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = register(
        "bc", exports["pipeline"], exports, capsys, "--promote", "--held-out", exports["held_out"]
    )

    assert code == 0, err
    directory = repository.root / "bc" / "1"
    assert sorted(path.name for path in directory.iterdir()) == [
        MANIFEST_FILE,
        MODEL_FILE,
        PROFILE_FILE,
    ]
    manifest = Manifest.read(directory)
    data = (directory / MODEL_FILE).read_bytes()
    assert manifest.sha256 == hashlib.sha256(data).hexdigest()
    assert manifest.size_bytes == len(data)
    assert manifest.feature_names == list(breast_cancer()[0].columns)
    assert [output.name for output in manifest.outputs] == ["label", "probabilities"]
    assert manifest.parity.rows == 150 and manifest.parity.max_abs_diff <= 1e-5
    assert set(manifest.parity.per_output) == {"label", "probabilities"}
    assert manifest.source["framework"] == "scikit-learn"
    assert manifest.source["estimator"] == "Pipeline"
    assert manifest.source["training_rows"] == 569
    profile = ReferenceProfile.load(directory / PROFILE_FILE)
    assert profile.feature_names == manifest.feature_names
    assert (profile.model, profile.version, profile.rows) == ("bc", 1, 569)
    assert profile.probability is not None and profile.label is not None
    assert profile.outputs_source == "held-out" and profile.probability.rows == 100
    assert "registered bc version 1" in out
    assert (
        repository.get("bc").predict(breast_cancer()[0].iloc[:3].to_numpy(dtype="float32")).labels
        == fitted_pipeline().predict(breast_cancer()[0].iloc[:3]).tolist()
    )


def test_a_new_version_is_the_next_integer_and_served_only_once_promoted(
    repository: ModelRepository, exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert register("bc", exports["pipeline"], exports, capsys, "--promote")[0] == 0

    code, out, _ = register("bc", exports["forest"], exports, capsys)

    assert code == 0
    assert repository.versions("bc") == [1, 2]
    assert repository.default_version("bc") == 1
    assert "promote with: onnxq promote bc 2" in out
    assert run_cli("promote", "bc", "2", capsys=capsys)[:2] == (0, "bc: default version 1 -> 2\n")
    assert ModelRepository(repository.root).default_version("bc") == 2
    assert (repository.root / "bc" / DEFAULT_FILE).read_text() == "2\n"


def test_rollback_goes_to_the_version_below_the_default_or_to_the_one_named(
    repository: ModelRepository, exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for model in ("pipeline", "forest", "pipeline"):
        assert register("bc", exports[model], exports, capsys, "--promote")[0] == 0
    assert ModelRepository(repository.root).default_version("bc") == 3

    assert run_cli("rollback", "bc", capsys=capsys)[0] == 0
    assert ModelRepository(repository.root).default_version("bc") == 2
    assert run_cli("rollback", "bc", "1", capsys=capsys)[0] == 0
    assert ModelRepository(repository.root).default_version("bc") == 1
    code, _, err = run_cli("rollback", "bc", capsys=capsys)
    assert code == 1 and "no version before 1" in err

    history = (repository.root / "bc" / HISTORY_FILE).read_text().splitlines()
    actions = [
        (entry["action"], entry["previous"], entry["version"]) for entry in map(json.loads, history)
    ]
    assert actions[-2:] == [("rollback", 3, 2), ("rollback", 2, 1)]


def test_a_parity_failure_blocks_register_and_writes_nothing(
    repository: ModelRepository,
    exports: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # An export directory whose model.onnx is another model's: it does not reproduce the source.
    swapped = tmp_path / "swapped"
    shutil.copytree(exports["pipeline"].parent, swapped)
    shutil.copy(exports["forest"], swapped / MODEL_FILE)

    code, _, err = register("bc", swapped / MODEL_FILE, exports, capsys, "--promote")

    assert code == 1
    assert "ONNX and the source model disagree" in err
    assert not (repository.root / "bc").exists()


def test_a_pickle_named_model_onnx_is_refused_at_register(
    repository: ModelRepository,
    exports: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    disguised = tmp_path / "disguised"
    shutil.copytree(exports["pipeline"].parent, disguised)
    pickle_to(disguised / MODEL_FILE, fitted_pipeline())

    code, _, err = register("bc", disguised / MODEL_FILE, exports, capsys)

    assert code == 1
    assert "is a Python pickle, not an ONNX model" in err
    assert repository.names() == []


def test_an_onnx_file_without_its_export_record_cannot_be_registered(
    repository: ModelRepository,
    exports: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copy(exports["pipeline"], tmp_path / MODEL_FILE)

    code, _, err = register("bc", tmp_path / MODEL_FILE, exports, capsys)

    assert code == 1
    assert "only a model exported with `onnxq export`" in err


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "/tmp/x", "x" * 65])
def test_a_name_that_could_leave_the_model_directory_is_refused_at_register(
    repository: ModelRepository,
    exports: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    code, _, err = register(name, exports["pipeline"], exports, capsys)

    assert code == 1
    assert "is not a valid model name" in err
    assert list(repository.root.iterdir()) == []  # nothing written
    assert not (tmp_path / "escape").exists()


def test_promote_refuses_a_version_whose_file_was_tampered_with(
    repository: ModelRepository, exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert register("bc", exports["pipeline"], exports, capsys, "--promote")[0] == 0
    assert register("bc", exports["forest"], exports, capsys)[0] == 0
    path = repository.root / "bc" / "2" / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))

    code, _, err = run_cli("promote", "bc", "2", capsys=capsys)

    assert code == 1
    assert "does not match its manifest" in err
    assert ModelRepository(repository.root).default_version("bc") == 1


def test_promote_and_rollback_of_unknown_models_or_versions_are_refused(
    repository: ModelRepository, exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert register("bc", exports["pipeline"], exports, capsys, "--promote")[0] == 0

    for argv in (
        ("promote", "bc", "9"),
        ("promote", "nope", "1"),
        ("rollback", "nope"),
        ("promote", "../bc", "1"),
        ("rollback", "bc", "0"),
    ):
        code, _, err = run_cli(*argv, capsys=capsys)
        assert code == 1, argv
        assert err.startswith("error: "), argv
    assert not (repository.root / "nope").exists()


def test_models_lists_versions_default_parity_and_size(
    repository: ModelRepository, exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert register("bc", exports["pipeline"], exports, capsys, "--promote")[0] == 0
    assert register("bc", exports["forest"], exports, capsys)[0] == 0

    code, out, _ = run_cli("models", capsys=capsys)

    assert code == 0
    header, first, second = out.splitlines()
    assert header.split()[:4] == ["model", "version", "default", "parity"]
    parity = Manifest.read(repository.root / "bc" / "1").parity.max_abs_diff
    assert first.split()[:4] == ["bc", "1", "*", f"{parity:.3g}"]
    assert second.split()[:2] == ["bc", "2"] and "*" not in second
    assert "KiB" in first and "150" in first


def test_an_unpromoted_register_keeps_serving_what_a_model_without_default_served(
    demo_model_dir: Path,
    tmp_path: Path,
    exports: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "models"
    shutil.copytree(demo_model_dir, root)
    monkeypatch.setenv("ONNXQ_MODEL_DIR", str(root))
    assert not (root / "breast-cancer" / DEFAULT_FILE).exists()  # written before DEFAULT existed

    assert register("breast-cancer", exports["pipeline"], exports, capsys)[0] == 0

    repository = ModelRepository(root)
    assert repository.versions("breast-cancer") == [1, 2]
    assert repository.default_version("breast-cancer") == 1


def test_training_data_without_the_models_features_is_refused_before_anything_is_written(
    repository: ModelRepository,
    exports: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    X, _ = breast_cancer()
    partial = tmp_path / "partial.csv"
    X.drop(columns=["mean radius"]).to_csv(partial, index=False)

    code, _, err = run_cli(
        "register", "bc", exports["pipeline"], "--reference", partial, capsys=capsys
    )

    assert code == 1
    assert "lacks the model's feature column(s) ['mean radius']" in err
    assert list(repository.root.iterdir()) == []  # nothing written


def test_models_still_lists_the_versions_when_the_default_file_is_broken(
    repository: ModelRepository, exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert register("bc", exports["pipeline"], exports, capsys, "--promote")[0] == 0
    (repository.root / "bc" / DEFAULT_FILE).write_text("9\n")

    code, out, err = run_cli("models", capsys=capsys)

    assert code == 0
    assert "names version 9" in err
    assert out.splitlines()[1].split()[:2] == ["bc", "1"]
    assert "*" not in out  # no version is marked default when DEFAULT cannot be read


def test_register_without_held_out_rows_profiles_no_outputs(
    repository: ModelRepository, exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Its outputs on its training rows would be a reference it never matches on new rows."""
    code, _out, err = register("bc", exports["pipeline"], exports, capsys)
    assert code == 0, err
    profile = ReferenceProfile.load(repository.root / "bc" / "1" / PROFILE_FILE)
    assert profile.probability is None and profile.outputs_source is None


def test_register_refuses_a_repository_that_does_not_exist_naming_it(
    tmp_path: Path,
    exports: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run outside the project folder, `models` would be a new directory nobody serves."""
    missing = tmp_path / "nowhere" / "models"
    monkeypatch.setenv("ONNXQ_MODEL_DIR", str(missing))
    code, _out, err = register("bc", exports["pipeline"], exports, capsys)
    assert code == 1
    assert f"no model repository at {missing}" in err and "ONNXQ_MODEL_DIR" in err
    assert not missing.exists()
