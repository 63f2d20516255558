"""The chi-square quantile against published table values (no scipy in onnxq)."""

from __future__ import annotations

import pytest

from drift.chi2 import chi2_quantile, regularized_lower_gamma


@pytest.mark.parametrize(
    ("p", "df", "table"),
    [
        (0.95, 1, 3.841459),
        (0.95, 2, 5.991465),
        (0.95, 9, 16.918978),
        (0.95, 29, 42.556968),
        (0.95, 99, 123.225221),
        (0.99, 1, 6.634897),
        (0.99, 9, 21.665994),
        (0.50, 2, 1.386294),
        (0.05, 9, 3.325113),
    ],
)
def test_chi2_quantile_matches_the_tables_to_six_decimals(p: float, df: int, table: float) -> None:
    assert chi2_quantile(p, df) == pytest.approx(table, abs=1e-6)


def test_the_regularized_gamma_of_one_is_the_exponential_distribution() -> None:
    # P(1, x) = 1 - e^-x, on both sides of the series / continued-fraction switch (x = a + 1).
    for x in (0.1, 1.0, 1.9, 2.1, 5.0, 30.0):
        assert regularized_lower_gamma(1.0, x) == pytest.approx(
            1 - 2.718281828459045**-x, rel=1e-12
        )


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (0.5, 0)])
def test_a_quantile_outside_the_distribution_is_refused(p: float, df: int) -> None:
    with pytest.raises(ValueError):
        chi2_quantile(p, df)
