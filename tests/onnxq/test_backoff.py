"""The one retry delay formula (onnxq/backoff.py): callbacks, drift webhook, transient retries."""

from __future__ import annotations

import math

import pytest

from onnxq.backoff import backoff_seconds


@pytest.mark.parametrize(
    ("retries", "base", "expected"),
    [(0, 1.0, 1.0), (1, 1.0, 2.0), (4, 1.0, 16.0), (0, 0.25, 0.25), (3, 0.25, 2.0), (5, 0.0, 0.0)],
)
def test_the_delay_starts_at_the_base_and_doubles_with_each_retry(
    retries: int, base: float, expected: float
) -> None:
    assert backoff_seconds(retries, base) == pytest.approx(expected)


def test_a_cap_bounds_the_delay_and_no_cap_lets_it_grow() -> None:
    assert [backoff_seconds(n, 1.0, cap=30) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_seconds(10, 1.0) == 1024.0
    assert backoff_seconds(5000, 1.0, cap=30) == 30.0  # beyond float range: still the cap
    assert backoff_seconds(5000, 1.0) == math.inf


def test_full_jitter_draws_between_zero_and_the_capped_delay() -> None:
    draws = [backoff_seconds(3, 1.0, cap=5, jitter=True) for _ in range(500)]
    assert all(0.0 <= draw <= 5.0 for draw in draws)
    assert len(set(draws)) > 400  # spread out, not one value
    assert max(draws) > 4.0 and min(draws) < 1.0
