"""`onnxq drift-profile` builds a profile from a CSV; `onnxq drift` runs a check and prints it."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from drift.log_reader import Progress
from onnxq.cli import drift as drift_cli
from onnxq.cli.main import main
from tests.support.demo_predictions import SHIFTED, log_demo_predictions

MODEL = "breast-cancer"


@pytest.fixture
def environment(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the demo model and ONNXQ_* pointing into tmp_path."""
    shutil.copytree(model_dir / MODEL, tmp_path / "models" / MODEL)
    for name, value in {
        "MODEL_DIR": tmp_path / "models",
        "PREDICTION_LOG_DIR": tmp_path / "predictions",
        "STATE_DIR": tmp_path / "state",
        "LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(f"ONNXQ_{name}", str(value))
    monkeypatch.chdir(tmp_path)  # no .env from the working tree
    return tmp_path


def test_drift_profile_builds_a_profile_from_a_csv_in_manifest_order(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = load_breast_cancer(as_frame=True).frame
    shuffled = data[list(reversed(data.columns))]  # other order, and an extra 'target' column
    shuffled.to_csv(environment / "training.csv", index=False)
    profile_file = environment / "models" / MODEL / "1" / "profile.json"
    profile_file.unlink()

    assert (
        main(["drift-profile", MODEL, "--data", str(environment / "training.csv"), "--bins", "5"])
        == 0
    )
    profile = json.loads(profile_file.read_text())
    manifest = json.loads((profile_file.parent / "manifest.json").read_text())
    assert [f["name"] for f in profile["features"]] == [f["name"] for f in manifest["features"]]
    assert profile["bins"] == 5 and profile["rows"] == 569 and profile["version"] == 1
    # never the model's outputs on its own training rows
    assert profile["probability"] is None and profile["outputs_source"] is None
    captured = capsys.readouterr()
    assert "profile.json: 30 features, 569 rows, no output profile" in captured.out
    assert "pass --held-out" in captured.err


def test_drift_profile_takes_the_output_reference_from_held_out_rows(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = load_breast_cancer(as_frame=True).frame
    data.iloc[:400].to_csv(environment / "training.csv", index=False)
    data.iloc[400:].to_csv(environment / "held-out.csv", index=False)
    command = ["drift-profile", MODEL, "--data", str(environment / "training.csv")]
    assert main([*command, "--held-out", str(environment / "held-out.csv")]) == 0
    profile = json.loads((environment / "models" / MODEL / "1" / "profile.json").read_text())
    assert profile["rows"] == 400 and profile["outputs_source"] == "held-out"
    assert profile["probability"]["rows"] == 169 and profile["label"]["rows"] == 169
    assert "outputs from 169 held-out rows" in capsys.readouterr().out


def test_drift_profile_names_the_features_a_csv_lacks(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pd.DataFrame({"mean radius": [1.0, 2.0]}).to_csv(environment / "thin.csv", index=False)
    assert main(["drift-profile", MODEL, "--data", str(environment / "thin.csv")]) == 2
    assert "lacks the model's features" in capsys.readouterr().err


def test_drift_prints_a_summary_drifted_first_and_writes_the_reports(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_demo_predictions(environment / "models", environment / "predictions", 600, shift=1.5)
    assert main(["drift", MODEL, "--days", "2", "--no-alert"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"{MODEL} version 1: 600 rows")
    assert lines[1].split()[:2] == ["feature", "verdict"]
    assert lines[2].startswith(SHIFTED) and " drift " in lines[2]
    assert f"drifted: {SHIFTED}" in out
    assert (environment / "state" / "drift" / MODEL / "latest.html").is_file()


def test_drift_since_a_date_after_the_logged_rows_finds_none(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_demo_predictions(environment / "models", environment / "predictions", 200)
    assert main(["drift", MODEL, "--since", "2999-01-01"]) == 2  # since must be before now
    assert "must be before now" in capsys.readouterr().err
    assert main(["drift", MODEL, "--since", "2020-01-01"]) == 0
    assert "200 rows" in capsys.readouterr().out


def test_drift_of_an_unknown_model_is_a_clear_error(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drift", "nope"]) == 2
    assert "model 'nope' is not in the model repository" in capsys.readouterr().err


def test_the_progress_line_shows_large_logs_only_one_line_per_tenth() -> None:
    stream = io.StringIO()
    line = drift_cli.ProgressLine(stream)
    line(Progress(10, 100, 5))  # a small log: nothing to show
    big = drift_cli.PROGRESS_MIN_BYTES * 10
    for read in range(0, big + 1, big // 40):
        line(Progress(read, big, read // 100))
    shown = stream.getvalue().splitlines()
    assert len(shown) == 11 and shown[-1].startswith("reading log [" + "#" * 30 + "] 100.0%")


def test_drift_refuses_a_model_repository_that_does_not_exist(
    environment: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONNXQ_MODEL_DIR", str(environment / "elsewhere"))
    assert main(["drift", MODEL, "--no-alert"]) == 2
    assert f"no model repository at {environment / 'elsewhere'}" in capsys.readouterr().err
