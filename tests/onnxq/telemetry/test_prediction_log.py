"""The prediction log: one JSON line per row, whole batches even under concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from onnxq.models.results import PredictionResult
from onnxq.telemetry.prediction_log import PredictionLog
from tests.support.prediction_log import prediction_log_files

FIELDS = {
    "ts",
    "source",
    "request_id",
    "job_id",
    "model",
    "version",
    "row",
    "features",
    "label",
    "probabilities",
    "latency_ms",
}


def read_lines(directory: Path) -> list[dict]:
    files = prediction_log_files(directory)
    assert len(files) == 1, files
    text = files[0].read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def result_for(n_rows: int) -> PredictionResult:
    return PredictionResult.classification(
        labels=[index % 2 for index in range(n_rows)],
        probabilities=[[0.25, 0.75] if index % 2 else [0.75, 0.25] for index in range(n_rows)],
        classes=[0, 1],
    )


def test_each_row_becomes_one_json_line_with_the_documented_fields(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions")
    rows = np.array([[1.5, 2.0, 3.25], [4.0, 5.0, 6.0]], dtype=np.float32)

    written = log.record(
        model="breast-cancer",
        version=3,
        rows=rows,
        result=result_for(2),
        latency_ms=1.23456,
        request_id="req-1",
        source="sync",
    )

    lines = read_lines(tmp_path / "predictions")
    assert written == 2
    assert [set(line) for line in lines] == [FIELDS, FIELDS]
    first, second = lines
    assert first["source"] == "sync"
    assert first["request_id"] == "req-1"
    assert first["job_id"] is None
    assert (first["model"], first["version"]) == ("breast-cancer", 3)
    assert [first["row"], second["row"]] == [0, 1]
    assert first["features"] == [1.5, 2.0, 3.25]
    assert second["features"] == [4.0, 5.0, 6.0]
    assert [first["label"], second["label"]] == [0, 1]
    assert second["probabilities"] == [0.25, 0.75]
    assert first["latency_ms"] == 1.235
    assert first["ts"] == second["ts"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])


def test_lines_go_to_a_file_named_after_the_utc_day(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    before = datetime.now(UTC)
    log.record(
        model="m", version=1, rows=[[1.0]], result=result_for(1), latency_ms=0.0, source="job"
    )
    after = datetime.now(UTC)

    [path] = tmp_path.glob("*.jsonl")
    assert path.name in {
        f"predictions-{before:%Y-%m-%d}.jsonl",
        f"predictions-{after:%Y-%m-%d}.jsonl",
    }
    day = path.name.removeprefix("predictions-").removesuffix(".jsonl")
    assert read_lines(tmp_path)[0]["ts"].startswith(day + "T")


def test_path_for_names_the_file_after_the_given_day(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)

    path = log.path_for(datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC))

    assert path == tmp_path / "predictions-2024-02-29.jsonl"


def test_later_batches_are_appended_after_earlier_ones(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    for job in ("a", "b"):
        log.record(
            model="m",
            version=1,
            rows=[[1.0], [2.0]],
            result=result_for(2),
            latency_ms=0.0,
            job_id=job,
            source="job",
        )

    assert [(line["job_id"], line["row"]) for line in read_lines(tmp_path)] == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("b", 1),
    ]


def test_a_batch_writes_its_jobs_lines_in_one_append_when_it_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = PredictionLog(tmp_path)
    appends: list[int] = []
    append = log._append

    def counted(path: Path, payload: bytes) -> None:
        appends.append(payload.count(b"\n"))
        append(path, payload)

    monkeypatch.setattr(log, "_append", counted)
    with log.batch() as batch:
        for job in ("a", "b", "c"):
            written = batch.record(
                model="m",
                version=1,
                rows=[[1.0], [2.0]],
                result=result_for(2),
                latency_ms=0.0,
                job_id=job,
                source="job",
            )
            assert written == 2
        assert appends == []  # nothing on disk before the batch closes

    assert appends == [6]
    lines = read_lines(tmp_path)
    assert [(line["job_id"], line["row"]) for line in lines] == [
        (job, row) for job in "abc" for row in (0, 1)
    ]
    assert all(set(line) == FIELDS for line in lines)


def test_a_log_directory_removed_while_running_is_made_again(tmp_path: Path) -> None:
    directory = tmp_path / "predictions"
    log = PredictionLog(directory)
    row = {
        "model": "m",
        "version": 1,
        "rows": [[1.0]],
        "result": result_for(1),
        "latency_ms": 0.0,
        "source": "sync",
    }
    log.record(**row, request_id="first")
    shutil.rmtree(directory)
    log.record(**row, request_id="second")
    assert [line["request_id"] for line in read_lines(directory)] == ["second"]


PROCESSES = 8
BATCHES = 50
ROWS = 200
FEATURES = 30


def write_batches(directory: str, writer: int) -> None:
    """Child process body: append BATCHES batches of ROWS rows, each batch tagged by its id."""
    log = PredictionLog(Path(directory))
    result = result_for(ROWS)
    for batch in range(BATCHES):
        rows = np.full((ROWS, FEATURES), writer + batch / 1000, dtype=np.float64)
        rows[:, 0] = np.arange(ROWS)
        log.record(
            model="m",
            version=1,
            rows=rows,
            result=result,
            latency_ms=0.5,
            request_id=f"{writer}-{batch}",
            source="job",
        )


def test_concurrent_processes_never_interleave_their_batches(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=write_batches, args=(str(tmp_path), writer))
        for writer in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * PROCESSES

    lines = read_lines(tmp_path)

    assert len(lines) == PROCESSES * BATCHES * ROWS
    batch_ids = []
    for start in range(0, len(lines), ROWS):
        batch = lines[start : start + ROWS]
        request_id = batch[0]["request_id"]
        # A whole batch is contiguous and in row order: nothing from another writer inside it.
        assert [line["request_id"] for line in batch] == [request_id] * ROWS
        assert [line["row"] for line in batch] == list(range(ROWS))
        assert [line["features"][0] for line in batch] == list(range(ROWS))
        batch_ids.append(request_id)
    expected = {f"{writer}-{batch}" for writer in range(PROCESSES) for batch in range(BATCHES)}
    assert sorted(batch_ids) == sorted(expected)
