"""Quantiles of the chi-square distribution, for the PSI noise level, without scipy.

scipy would be the only reason for a 100 MB dependency in the worker image; the noise level
needs one function, chi2.ppf(p, df), for df = bins - 1. It is the x with P(df/2, x/2) = p,
where P is the regularized lower incomplete gamma function, computed here by its series
(x < a + 1) or its continued fraction (Numerical Recipes, 6.2), and inverted by bisection.
"""

from __future__ import annotations

import math
from functools import lru_cache

_EPS = 1e-15
_TINY = 1e-300
_MAX_TERMS = 1000


def regularized_lower_gamma(a: float, x: float) -> float:
    """P(a, x) = lower_gamma(a, x) / Gamma(a), for a > 0 and x >= 0."""
    if x <= 0:
        return 0.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        # Series: lower_gamma(a, x) = e^-x x^a sum_n x^n / (a (a+1) ... (a+n)).
        term = total = 1.0 / a
        denominator = a
        for _ in range(_MAX_TERMS):
            denominator += 1
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return min(1.0, total * math.exp(log_prefactor))
    # Continued fraction for Q(a, x) = 1 - P(a, x), modified Lentz.
    b = x + 1 - a
    c = 1 / _TINY
    d = 1 / b
    h = d
    for n in range(1, _MAX_TERMS):
        an = -n * (n - a)
        b += 2
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            break
    return max(0.0, 1.0 - math.exp(log_prefactor) * h)


@lru_cache(maxsize=256)
def chi2_quantile(p: float, df: int) -> float:
    """The x below which a chi-square variable with `df` degrees of freedom falls with chance p."""
    if not 0 < p < 1 or df < 1:
        raise ValueError(f"need 0 < p < 1 and df >= 1, got p={p}, df={df}")
    low, high = 0.0, max(1.0, float(df))
    while regularized_lower_gamma(df / 2, high / 2) < p:
        high *= 2
    for _ in range(200):  # bisection to the last bit of a double
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if regularized_lower_gamma(df / 2, middle / 2) < p:
            low = middle
        else:
            high = middle
    return (low + high) / 2
