"""The prediction log: a record batch per request or job, one segment file per writing process."""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from drift import log_segments
from onnxq.models.results import PredictionResult
from onnxq.telemetry.prediction_log import PredictionLog
from tests.support.prediction_log import prediction_lines, prediction_log_files

FIELDS = [
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
]


def result_for(n_rows: int) -> PredictionResult:
    return PredictionResult.classification(
        labels=[index % 2 for index in range(n_rows)],
        probabilities=[[0.25, 0.75] if index % 2 else [0.75, 0.25] for index in range(n_rows)],
        classes=[0, 1],
    )


def record(log: PredictionLog, **fields: object) -> int:
    return log.record(**{**_prediction(), **fields})


def test_each_row_reads_back_with_the_documented_fields(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions")
    rows = np.array([[1.5, 2.0, 3.25], [4.0, 5.0, np.nan]], dtype=np.float32)

    written = log.record(
        model="breast-cancer",
        version=3,
        rows=rows,
        result=result_for(2),
        latency_ms=1.23456,
        request_id="req-1",
        source="sync",
    )

    lines = prediction_lines(tmp_path / "predictions")
    assert written == 2
    assert [list(line) for line in lines] == [FIELDS, FIELDS]
    first, second = lines
    assert first["source"] == "sync"
    assert first["request_id"] == "req-1"
    assert first["job_id"] is None
    assert (first["model"], first["version"]) == ("breast-cancer", 3)
    assert [first["row"], second["row"]] == [0, 1]
    assert first["features"] == [1.5, 2.0, 3.25]
    assert second["features"] == [4.0, 5.0, None]  # a missing value: NaN in the log
    assert [first["label"], second["label"]] == [0, 1]
    assert second["probabilities"] == [0.25, 0.75]
    assert first["latency_ms"] == 1.235
    assert first["ts"] == second["ts"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])


def test_the_columns_keep_the_models_own_float32_values(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    rows = np.random.default_rng(1).random((50, 4)).astype(np.float32)
    probabilities = np.random.default_rng(2).random((50, 3)).astype(np.float32)
    result = PredictionResult.classification(["a", "b"] * 25, probabilities, ["a", "b", "c"])
    log.record(model="m", version=1, rows=rows, result=result, latency_ms=2.0, source="v2")

    [path] = prediction_log_files(tmp_path)
    [batch] = log_segments.read_segment(path).batches
    assert batch.features.dtype == np.float32
    assert np.array_equal(batch.features, rows)
    assert np.array_equal(batch.probabilities, probabilities)
    assert batch.label == ["a", "b"] * 25
    assert batch.row.tolist() == list(range(50))


def test_a_segment_is_named_after_its_day_model_version_and_process(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    before = datetime.now(UTC)
    record(log, model="breast-cancer", version=7)
    after = datetime.now(UTC)

    [path] = prediction_log_files(tmp_path)
    day, model, version, name = path.relative_to(tmp_path).parts
    assert day in {f"{before:%Y-%m-%d}", f"{after:%Y-%m-%d}"}
    assert (model, version) == ("breast-cancer", "7")
    assert re.fullmatch(rf".+-{os.getpid()}-[0-9a-f]{{8}}-0001\.arrows", name)
    assert prediction_lines(tmp_path)[0]["ts"].startswith(day + "T")


def test_later_batches_are_appended_after_earlier_ones(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    for job in ("a", "b"):
        record(log, job_id=job)

    assert len(prediction_log_files(tmp_path)) == 1
    assert [(line["job_id"], line["row"]) for line in prediction_lines(tmp_path)] == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("b", 1),
    ]


def test_a_jobs_rows_carry_their_index_in_the_job(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    record(log, job_id="j", first_row=10)
    assert [line["row"] for line in prediction_lines(tmp_path)] == [10, 11]


def test_a_batch_writes_its_jobs_in_one_append_when_it_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = PredictionLog(tmp_path)
    writes: list[int] = []
    real_writev = os.writev

    def counted(fd: int, buffers: list[memoryview]) -> int:
        writes.append(sum(len(buffer) for buffer in buffers))
        return real_writev(fd, buffers)

    monkeypatch.setattr(os, "writev", counted)
    with log.batch() as batch:
        for job in ("a", "b", "c"):
            assert batch.record(**{**_prediction(), "job_id": job}) == 2
        assert writes == []  # nothing on disk before the batch closes

    assert len(writes) == 1
    lines = prediction_lines(tmp_path)
    assert [(line["job_id"], line["row"]) for line in lines] == [
        (job, row) for job in "abc" for row in (0, 1)
    ]


def _prediction() -> dict[str, object]:
    return {
        "model": "m",
        "version": 1,
        "rows": [[1.0], [2.0]],
        "result": result_for(2),
        "latency_ms": 0.0,
        "source": "job",
    }


def test_each_model_version_has_its_own_segment(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    record(log, version=1)
    record(log, version=2)
    record(log, model="other", rows=[[1.0, 2.0], [3.0, 4.0]])

    paths = [p.relative_to(tmp_path).parts[1:3] for p in prediction_log_files(tmp_path)]
    assert sorted(paths) == [("m", "1"), ("m", "2"), ("other", "1")]


def test_a_segment_past_its_size_is_followed_by_a_new_one(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, segment_bytes=1)
    for job in ("a", "b", "c"):
        record(log, job_id=job)

    names = [p.name for p in prediction_log_files(tmp_path)]
    assert [name[-11:] for name in names] == ["0001.arrows", "0002.arrows", "0003.arrows"]
    assert [line["job_id"] for line in prediction_lines(tmp_path)] == list("aabbcc")


def test_a_log_directory_removed_while_running_is_made_again(tmp_path: Path) -> None:
    directory = tmp_path / "predictions"
    log = PredictionLog(directory)
    record(log, request_id="first")
    shutil.rmtree(directory)
    record(log, request_id="second")
    assert [line["request_id"] for line in prediction_lines(directory)] == ["second"] * 2


def test_a_segment_cut_short_reads_back_up_to_the_cut(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    record(log, job_id="a")
    record(log, job_id="b")
    [path] = prediction_log_files(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-20])  # a process killed in the middle of its last write

    read = log_segments.read_segment(path)
    assert read.truncated
    assert [batch.job_id[0] for batch in read.batches] == ["a"]


def test_a_forked_child_writes_a_segment_of_its_own(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    record(log, request_id="parent")
    context = multiprocessing.get_context("fork")
    child = context.Process(target=record, args=(log,), kwargs={"request_id": "child"})
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    record(log, request_id="parent")

    by_file = {
        path.name: [b.request_id[0] for b in log_segments.read_segment(path).batches]
        for path in prediction_log_files(tmp_path)
    }
    assert sorted(by_file.values()) == [["child"], ["parent", "parent"]]
    assert any(f"-{child.pid}-" in name for name in by_file)


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


def test_concurrent_processes_write_whole_batches_to_their_own_segments(tmp_path: Path) -> None:
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

    assert len(prediction_log_files(tmp_path)) == PROCESSES
    lines = prediction_lines(tmp_path)
    assert len(lines) == PROCESSES * BATCHES * ROWS
    batch_ids = []
    for start in range(0, len(lines), ROWS):
        batch = lines[start : start + ROWS]
        request_id = batch[0]["request_id"]
        assert [line["request_id"] for line in batch] == [request_id] * ROWS
        assert [line["row"] for line in batch] == list(range(ROWS))
        assert [line["features"][0] for line in batch] == list(range(ROWS))
        batch_ids.append(request_id)
    expected = {f"{writer}-{batch}" for writer in range(PROCESSES) for batch in range(BATCHES)}
    assert sorted(batch_ids) == sorted(expected)


def test_a_segment_its_writer_never_wrote_to_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "2026-12-02" / "m" / "1" / "host-1-00000000-0001.arrows"
    path.parent.mkdir(parents=True)
    path.touch()  # killed between opening its segment and its first write
    read = log_segments.read_segment(path)
    assert (read.batches, read.truncated) == ([], False)


def test_after_a_failed_write_the_next_batch_starts_a_new_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = PredictionLog(tmp_path)
    record(log, job_id="a")
    real_writev = os.writev

    def disk_fills(fd: int, buffers: list[memoryview]) -> int:
        os.write(fd, bytes(buffers[0])[:10])  # part of the batch reaches the file, then ENOSPC
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "writev", disk_fills)
    with pytest.raises(OSError, match="No space"):
        record(log, job_id="b")
    monkeypatch.setattr(os, "writev", real_writev)
    record(log, job_id="c")

    first, second = prediction_log_files(tmp_path)
    cut = log_segments.read_segment(first)
    assert cut.truncated and [b.job_id[0] for b in cut.batches] == ["a"]
    assert [b.job_id[0] for b in log_segments.read_segment(second).batches] == ["c"]


def test_a_micro_batch_whose_jobs_change_schema_writes_each_to_its_segment(
    tmp_path: Path,
) -> None:
    log = PredictionLog(tmp_path)
    numbers = PredictionResult.classification([0, 1], [[0.5, 0.5]] * 2, [0, 1])
    names = PredictionResult.classification(["a", "b"], [[0.5, 0.5]] * 2, ["a", "b"])
    with log.batch() as batch:
        for job, result in (("j1", numbers), ("j2", names), ("j3", numbers)):
            batch.record(**{**_prediction(), "result": result, "job_id": job})

    by_file = [
        [(b.job_id[0], b.label) for b in log_segments.read_segment(path).batches]
        for path in prediction_log_files(tmp_path)
    ]
    assert by_file == [[("j1", [0, 1])], [("j2", ["a", "b"])], [("j3", [0, 1])]]


def test_a_new_days_first_batch_closes_the_earlier_days_segments(tmp_path: Path) -> None:
    now = [datetime(2026, 12, 1, 23, 59, 59, 999000, tzinfo=UTC)]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    log = PredictionLog(
        tmp_path, clock=lambda: (now[0] - epoch) // timedelta(microseconds=1) * 1000
    )
    record(log, job_id="late")
    record(log, model="other", job_id="late")
    open_before = len(os.listdir("/proc/self/fd"))
    now[0] = datetime(2026, 12, 2, 0, 0, 0, 1000, tzinfo=UTC)
    record(log, job_id="early")

    assert len(os.listdir("/proc/self/fd")) == open_before - 1  # two closed, one opened
    days = [p.relative_to(tmp_path).parts[0] for p in prediction_log_files(tmp_path)]
    assert days == ["2026-12-01", "2026-12-01", "2026-12-02"]
    assert [line["ts"] for line in prediction_lines(tmp_path)] == [
        "2026-12-01T23:59:59.999Z", "2026-12-01T23:59:59.999Z",
        "2026-12-01T23:59:59.999Z", "2026-12-01T23:59:59.999Z",
        "2026-12-02T00:00:00.001Z", "2026-12-02T00:00:00.001Z",
    ]  # fmt: skip


def test_short_writes_are_finished_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = PredictionLog(tmp_path)
    real_writev = os.writev

    def seven_bytes_at_most(fd: int, buffers: list[memoryview]) -> int:
        return real_writev(fd, [bytes(b"".join(bytes(b) for b in buffers)[:7])])

    monkeypatch.setattr(os, "writev", seven_bytes_at_most)
    for job in ("a", "b"):
        record(log, job_id=job)

    assert [(line["job_id"], line["row"]) for line in prediction_lines(tmp_path)] == [
        (job, row) for job in "ab" for row in (0, 1)
    ]
