"""Reading a window of the prediction log: rotation by day, ts filter, corrupt lines, chunks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drift import ReferenceProfile, build_profile, log_files, read_window, window_bounds
from tests.support.prediction_log import append, log_line

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=500), "colour": rng.choice(["red", "blue"], 500)})
    p = rng.random(500)
    return build_profile(
        frame,
        outputs={"probabilities": np.c_[1 - p, p], "label": (p > 0.5).astype(int)},
        outputs_source="held-out",
    )


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=UTC)


def test_the_window_ends_now_and_starts_days_before() -> None:
    assert window_bounds(7, NOW) == (NOW - timedelta(days=7), NOW)
    naive = datetime(2026, 11, 25, 12, 0)
    assert window_bounds(1, naive)[1] == NOW


def test_only_daily_files_whose_day_overlaps_the_window_are_picked(tmp_path: Path) -> None:
    for day in ("2026-11-17", "2026-11-18", "2026-11-21", "2026-11-25", "2026-11-26"):
        append(tmp_path, day, [b"{}"])
    (tmp_path / "predictions-2026-11-22.jsonl.gz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a log")
    start, end = window_bounds(7, NOW)  # 2026-11-18 12:00 .. 2026-11-25 12:00
    names = [p.name for p in log_files(tmp_path, start, end)]
    assert names == [
        "predictions-2026-11-18.jsonl",
        "predictions-2026-11-21.jsonl",
        "predictions-2026-11-25.jsonl",
    ]


def test_a_missing_log_directory_reads_as_an_empty_window(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    counts = read_window(profile, tmp_path / "nope", "m", now=NOW)
    assert counts.rows == 0
    assert counts.files == []


def test_rotated_files_across_days_are_all_read_and_lines_outside_the_window_ignored(
    tmp_path: Path,
    profile: ReferenceProfile,
) -> None:
    row = [0.0, "red"]
    # window with days=2: 2026-11-23 12:00 .. 2026-11-25 12:00
    append(tmp_path, "2026-11-22", [b"this file is never opened"])
    append(tmp_path, "2026-11-23", [log_line(at(23, 11), row), log_line(at(23, 13), row)])
    append(tmp_path, "2026-11-24", [log_line(at(24, h), row) for h in range(24)])
    append(tmp_path, "2026-11-25", [log_line(at(25, 11), row), log_line(at(25, 13), row)])
    append(tmp_path, "2026-11-26", [log_line(at(26, 1), row)])

    counts = read_window(profile, tmp_path, "m", days=2, now=NOW)

    assert counts.files == [
        "predictions-2026-11-23.jsonl",
        "predictions-2026-11-24.jsonl",
        "predictions-2026-11-25.jsonl",
    ]
    assert counts.rows == 1 + 24 + 1
    assert counts.outside_window == 2
    assert counts.corrupt_lines == 0
    assert counts.features[0].counts.sum() == 26


def test_corrupt_and_truncated_lines_are_skipped_and_counted(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    good = log_line(at(25, 1), [1.0, "blue"])
    truncated = log_line(at(25, 2), [1.0, "blue"])[:40]
    append(
        tmp_path,
        "2026-11-25",
        [
            good,
            b"not json at all",
            b"[1, 2, 3]",
            b'{"ts": "2026-11-25T01:00:00.000Z", "model": "m", "version": 1}',
            b"",
            good,
            truncated,
        ],
        newline_at_end=False,
    )
    counts = read_window(profile, tmp_path, "m", days=1, now=NOW)
    assert counts.rows == 2
    assert counts.corrupt_lines == 4  # garbage, a list, no features, the truncated last line


def test_lines_of_other_models_versions_or_widths_are_not_counted(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    when = at(25, 1)
    append(
        tmp_path,
        "2026-11-25",
        [
            log_line(when, [1.0, "red"], version=1),
            log_line(when, [1.0, "red"], version=2),
            log_line(when, [1.0, "red"], model="other"),
            log_line(when, [1.0, "red", 3.0], version=1),
        ],
    )
    assert read_window(profile, tmp_path, "m", days=1, now=NOW).rows == 2
    only_v1 = read_window(profile, tmp_path, "m", version=1, days=1, now=NOW)
    assert only_v1.rows == 1
    assert only_v1.mismatched_lines == 1


def test_counts_are_the_same_whatever_the_chunk_size(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    rng = np.random.default_rng(5)
    lines = [
        log_line(
            at(25, 1),
            [float(x) if i % 17 else None, str(c)],
            label=int(p > 0.5),
            probabilities=[1 - float(p), float(p)],
        )
        for i, (x, c, p) in enumerate(
            zip(
                rng.normal(size=250),
                rng.choice(["red", "blue", "green"], 250),
                rng.random(250),
                strict=True,
            )
        )
    ]
    append(tmp_path, "2026-11-25", lines)
    whole = read_window(profile, tmp_path, "m", days=1, now=NOW)
    chunked = read_window(profile, tmp_path, "m", days=1, now=NOW, chunk_size=7)
    assert whole.rows == chunked.rows == 250
    for a, b in zip(whole.features, chunked.features, strict=True):
        assert a.counts.tolist() == b.counts.tolist()
        assert a.missing == b.missing
    assert whole.features[0].missing == 15  # rows 0, 17, 34, ..., 238
    assert whole.features[1].counts[-1] > 0  # "green" was never seen in training
    assert chunked.probability is not None and chunked.probability.counts.sum() == 250
    assert chunked.label is not None and chunked.label.counts.sum() == 250
