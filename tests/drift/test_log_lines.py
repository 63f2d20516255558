"""The fast path (PredictionLog's layout, one block at a time) counts exactly what the general
path (orjson, line by line) counts, and hands anything unusual to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import drift.log_reader
from drift import build_profile, read_window
from drift.log_lines import parse_block
from drift.profile import ReferenceProfile
from tests.support.prediction_log import append, log_line

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def profile(number_and_code_profile: ReferenceProfile) -> ReferenceProfile:
    return number_and_code_profile


def mixed_log(directory: Path) -> None:
    """Lines of every kind: good ones, nulls, other models and widths, outside the window,
    string labels, a corrupt line and a truncated last line."""
    rng = np.random.default_rng(4)
    lines = []
    for i in range(300):
        when = NOW - timedelta(hours=i)
        features = [float(rng.normal()), int(rng.integers(0, 4))]
        if i % 17 == 0:
            features[0] = None
        lines.append(log_line(when, features, row=i, label=int(i % 3 == 0)))
    lines.append(log_line(NOW - timedelta(hours=1), [1.0, 1.0], model="other"))
    lines.append(log_line(NOW - timedelta(hours=1), [1.0, 1.0], version=2))
    lines.append(log_line(NOW - timedelta(hours=1), [1.0, 1.0, 3.0]))
    lines.append(log_line(NOW - timedelta(days=9), [1.0, 1.0]))
    lines.append(log_line(NOW - timedelta(hours=2), [0.5, 2.0], label="yes"))
    lines.append(b'{"ts": "not json')
    append(directory, "2026-11-29", lines[:150])
    append(directory, "2026-11-30", lines[150:])
    append(directory, "2026-11-30", [log_line(NOW, [0.1, 1.0])[:40]], newline_at_end=False)


def counts(window: drift.log_reader.WindowCounts) -> tuple:
    return (
        window.rows,
        window.corrupt_lines,
        window.mismatched_lines,
        window.outside_window,
        [[*b.counts.tolist(), b.missing] for b in window.features],
        window.probability.counts.tolist(),
        window.label.counts.tolist(),
    )


@pytest.mark.parametrize("chunk_size", [1, 7, 10_000])
def test_the_fast_and_the_general_path_count_the_same(
    tmp_path: Path,
    profile: ReferenceProfile,
    monkeypatch: pytest.MonkeyPatch,
    chunk_size: int,
) -> None:
    mixed_log(tmp_path)
    fast = read_window(profile, tmp_path, "m", 1, days=7, now=NOW, chunk_size=chunk_size)
    monkeypatch.setattr(drift.log_reader, "parse_block", lambda *args: None)
    general = read_window(profile, tmp_path, "m", 1, days=7, now=NOW, chunk_size=chunk_size)
    assert counts(fast) == counts(general)
    # hourly lines: the last 7 days hold i = 0..168, and the line with a string label
    assert fast.rows == 169 + 1 and fast.corrupt_lines == 2 and fast.mismatched_lines == 1
    assert fast.outside_window == (299 - 168) + 1  # the older hourly lines and the 9-day-old one


@pytest.mark.parametrize(
    "features",
    [b"[1.0,,2.0]", b"[1.0,2.0,3.0]", b"[1.0]", b"[1.0,nan]", b"[1.0,1.2.3]"],
    ids=["empty field", "too wide", "too narrow", "nan literal", "not a number"],
)
def test_a_block_with_an_odd_features_list_goes_to_the_general_path(features: bytes) -> None:
    line = log_line(NOW, [0.0, 0.0]).replace(b"[0.0,0.0]", features)
    assert parse_block(line, 1, "m", 1, NOW - timedelta(days=1), NOW, 2) is None


def test_a_value_logged_on_a_float32_training_edge_lands_in_the_training_bin(
    tmp_path: Path,
) -> None:
    # float32 training data, as the demo model's: every decile of it is the float32 10.26
    training = np.array([1.26] * 5 + [10.26] * 95, dtype=np.float32)
    profile = build_profile(training.reshape(-1, 1), feature_names=["x"], bins=10)
    # 95 % of the rows: 10.26 has a bin of its own, [10.26, the next float)
    edge, after = profile.features[0].cuts
    assert edge == float(np.float32(10.26)) != 10.26  # 10.260000228881836
    assert after == float(np.nextafter(edge, np.inf))
    append(tmp_path, "2026-11-30", [log_line(NOW, [10.26], model="m")])
    window = read_window(profile, tmp_path, "m", days=1, now=NOW)
    # left-closed bins: the training value 10.26 (float32) is in its bin, and so is the log's
    assert window.features[0].counts.tolist() == [0, 1, 0]
