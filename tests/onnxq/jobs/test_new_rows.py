"""A new job's rows as a file's reader hands them over: in memory while few, in the job's rows
blob once past the store's inline size, and nothing left behind when they are not submitted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxq.jobs.blobs import ROWS, DirectoryBlobs
from onnxq.jobs.new_rows import NewJobRows, RowsInBlob

JOB = "0" * 32


def blocks(rows: int, width: int = 3, block: int = 4) -> list[np.ndarray]:
    matrix = np.arange(rows * width, dtype=np.float32).reshape(rows, width)
    return [matrix[start : start + block] for start in range(0, rows, block)]


def collected(blobs: DirectoryBlobs | None, rows: int, inline_rows: int):
    with NewJobRows(blobs, JOB, 3, inline_rows) as new:
        scratch = np.empty((4, 3), np.float32)
        for block in blocks(rows):
            part = scratch[: len(block)]
            part[:] = block  # the reader reuses its block's array
            new.add(part)
        return new.finish()


def test_few_rows_stay_in_memory_as_one_matrix(tmp_path: Path) -> None:
    blobs = DirectoryBlobs(tmp_path)
    rows = collected(blobs, 10, inline_rows=10)
    assert isinstance(rows, np.ndarray)
    assert np.array_equal(rows, np.concatenate(blocks(10)))
    assert list(tmp_path.iterdir()) == []


def test_rows_past_the_inline_size_are_the_jobs_rows_blob(tmp_path: Path) -> None:
    blobs = DirectoryBlobs(tmp_path)
    rows = collected(blobs, 11, inline_rows=10)
    assert rows == RowsInBlob(JOB, 11, 3)
    stored = np.frombuffer(blobs.read(JOB, ROWS), np.float32).reshape(-1, 3)
    assert np.array_equal(stored, np.concatenate(blocks(11)))
    assert [p.name for p in tmp_path.iterdir()] == [f"{JOB}.rows"]


def test_without_a_blob_store_every_row_stays_in_memory() -> None:
    rows = collected(None, 11, inline_rows=10)
    assert isinstance(rows, np.ndarray) and len(rows) == 11


def test_no_rows_are_an_empty_matrix_of_the_width(tmp_path: Path) -> None:
    rows = collected(DirectoryBlobs(tmp_path), 0, inline_rows=10)
    assert isinstance(rows, np.ndarray) and rows.shape == (0, 3)


def test_an_error_while_adding_leaves_no_blob_whole_or_in_part(tmp_path: Path) -> None:
    blobs = DirectoryBlobs(tmp_path)
    with pytest.raises(ValueError, match="a bad row"), NewJobRows(blobs, JOB, 3, 2) as new:
        for block in blocks(12):
            new.add(block)
        raise ValueError("a bad row")
    assert list(tmp_path.iterdir()) == []


def test_discard_removes_a_finished_blob(tmp_path: Path) -> None:
    blobs = DirectoryBlobs(tmp_path)
    with NewJobRows(blobs, JOB, 3, 2) as new:
        for block in blocks(12):
            new.add(block)
        assert isinstance(new.finish(), RowsInBlob)
        new.discard()
    assert list(tmp_path.iterdir()) == []
