"""Large prediction log appends past the page cache (O_DIRECT): the same bytes in the same order
as a buffered write, whatever the file's length before them; and every byte buffered where the
file system has no O_DIRECT or refuses it part way."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from drift import log_segments
from onnxq.models.results import PredictionResult
from onnxq.telemetry import direct_writes, prediction_log
from onnxq.telemetry.direct_writes import ALIGN, DirectAppender, open_direct
from onnxq.telemetry.prediction_log import PredictionLog
from tests.support.prediction_log import prediction_log_files

LARGE_ROWS = 70_000  # x 30 float32 features: 8.4 MB, past DIRECT_MIN_BYTES


def job(log: PredictionLog, job_id: str, rows: int) -> np.ndarray:
    features = np.random.default_rng(rows).random((rows, 30), dtype=np.float32)
    log.record(
        model="m",
        version=1,
        rows=features,
        result=PredictionResult.classification(
            labels=np.arange(rows) % 2, probabilities=np.full((rows, 2), 0.5), classes=[0, 1]
        ),
        latency_ms=1.0,
        job_id=job_id,
        source="job",
    )
    return features


def read_back(directory: Path) -> list[tuple[str, np.ndarray]]:
    [segment] = prediction_log_files(directory)
    read = log_segments.read_segment(segment)
    assert not read.truncated
    return [(batch.job_id[0], batch.features) for batch in read.batches]


def written(directory: Path, rows: list[int]) -> list[tuple[str, np.ndarray]]:
    log = PredictionLog(directory)
    try:
        return [(f"j{i}", job(log, f"j{i}", n)) for i, n in enumerate(rows)]
    finally:
        log.close()


def same(found: list[tuple[str, np.ndarray]], expected: list[tuple[str, np.ndarray]]) -> None:
    assert [job_id for job_id, _ in found] == [job_id for job_id, _ in expected]
    for (_, got), (_, sent) in zip(found, expected, strict=True):
        assert np.array_equal(got, sent)


def test_a_large_batch_between_small_ones_is_written_direct_and_reads_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directs: list[bool] = []
    real = DirectAppender.append

    def spied(self: DirectAppender, *args: object) -> bool:
        directs.append(real(self, *args))  # type: ignore[arg-type]
        return directs[-1]

    monkeypatch.setattr(DirectAppender, "append", spied)
    expected = written(tmp_path, [3, LARGE_ROWS, 5, LARGE_ROWS + 1, 2])
    assert directs == [True, True]  # the two large ones, each from an unaligned end
    same(read_back(tmp_path), expected)


def test_without_o_direct_every_batch_is_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prediction_log, "open_direct", lambda path: None)  # tmpfs, say
    monkeypatch.setattr(DirectAppender, "append", lambda *args: pytest.fail("direct"))
    expected = written(tmp_path, [LARGE_ROWS, 1, LARGE_ROWS])
    same(read_back(tmp_path), expected)


def test_a_direct_write_refused_part_way_is_finished_buffered_and_not_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[int] = []
    real_open, real_write = direct_writes.open_direct, os.write

    def opening(path: Path) -> int | None:
        fd = real_open(path)
        opened.append(fd)
        return fd

    def refused(fd: int, data: object) -> int:
        if fd in opened:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)  # type: ignore[arg-type]

    monkeypatch.setattr(prediction_log, "open_direct", opening)
    monkeypatch.setattr(os, "write", refused)
    with capture_logs() as events:
        expected = written(tmp_path, [1, LARGE_ROWS, LARGE_ROWS])
    assert len(opened) == 1  # opened once, dropped at its refusal
    same(read_back(tmp_path), expected)
    [refusal] = [e for e in events if e["event"] == "prediction_log_direct_refused"]
    assert refusal["log_level"] == "warning" and refusal["segment"].endswith(".arrows")


@pytest.mark.parametrize("start", [0, 1, ALIGN - 1, ALIGN, 3 * ALIGN + 17])
def test_the_file_holds_the_bytes_in_order_across_bounce_buffers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: int
) -> None:
    monkeypatch.setattr(direct_writes, "BOUNCE_BYTES", 3 * ALIGN)
    path = tmp_path / "segment"
    head = os.urandom(start)
    path.write_bytes(head)
    parts = [os.urandom(n) for n in (5, 2 * ALIGN + 3, 0, 7 * ALIGN, 1, ALIGN - 1)]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    direct_fd = open_direct(path)
    assert direct_fd is not None  # the test directory's file system has O_DIRECT (ext4 here)
    try:
        assert DirectAppender().append(fd, direct_fd, start, [memoryview(p) for p in parts])
    finally:
        os.close(fd)
        os.close(direct_fd)
    assert path.read_bytes() == head + b"".join(parts)
