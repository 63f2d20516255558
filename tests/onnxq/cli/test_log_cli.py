"""`onnxq log` prints the prediction log's rows as JSON lines, one model's or a day's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from onnxq.cli.main import main
from onnxq.models.results import PredictionResult
from onnxq.telemetry.prediction_log import PredictionLog


@pytest.fixture
def log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "predictions"
    monkeypatch.setenv("ONNXQ_ENV_FILE", "")
    monkeypatch.setenv("ONNXQ_PREDICTION_LOG_DIR", str(directory))
    log = PredictionLog(directory)
    for model, version, label in (("a", 1, "x"), ("a", 2, "y"), ("b", 1, "z")):
        rows = np.array([[0.1, 17.99], [np.nan, 2.5]], dtype=np.float32)
        result = PredictionResult.classification([label] * 2, [[0.2, 0.8]] * 2, [label])
        log.record(model=model, version=version, rows=rows, result=result, latency_ms=0.5,
                   request_id="r", source="sync")  # fmt: skip
    return directory


def printed(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> list[dict]:
    assert main(["log", *args]) == 0
    return [orjson.loads(line) for line in capsysbinary.readouterr().out.splitlines()]


def test_every_row_is_a_json_line_with_its_values_as_logged(
    log_dir: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    lines = printed(capsysbinary)
    assert [(line["model"], line["version"], line["label"]) for line in lines] == [
        ("a", 1, "x"), ("a", 1, "x"), ("a", 2, "y"), ("a", 2, "y"), ("b", 1, "z"), ("b", 1, "z"),
    ]  # fmt: skip
    assert lines[0]["features"] == [0.1, 17.99]  # the float32 values' shortest decimals
    assert lines[1]["features"] == [None, 2.5]
    assert lines[0]["probabilities"] == [0.2, 0.8]
    assert [line["row"] for line in lines[:2]] == [0, 1]


def test_one_model_one_version_or_one_day(
    log_dir: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert {line["model"] for line in printed(capsysbinary, "--model", "b")} == {"b"}
    one = printed(capsysbinary, "--model", "a", "--version", "2")
    assert [line["version"] for line in one] == [2, 2]
    day = printed(capsysbinary, "--model", "a")[0]["ts"][:10]  # the UTC day it was logged
    assert len(printed(capsysbinary, "--model", "a", "--day", day)) == 4
    assert printed(capsysbinary, "--model", "a", "--day", "2020-01-01") == []
