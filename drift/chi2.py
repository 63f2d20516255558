"""The chi-square distribution, central and noncentral, for drift's decision rule, without scipy.

scipy would be the only reason for a 100 MB dependency in the worker image; drift needs three
functions: the upper tail Q(df/2, x/2) (a p-value), the quantile chi2.ppf(p, df), and the
quantile of a noncentral chi-square (drift/decision.py). P and Q are the regularized incomplete
gamma functions, computed by their series (x < a + 1) or continued fraction (Numerical Recipes,
6.2); the quantile is found by bisection. The noncentral quantile uses Patnaik's approximation
(1949): chi2(df, nc) ~ rho * chi2(nu), rho = (df + 2 nc) / (df + nc),
nu = (df + nc)^2 / (df + 2 nc).
"""

from __future__ import annotations

import math
from functools import lru_cache

_EPS = 1e-15
_TINY = 1e-300
_MAX_TERMS = 1000


def _series_and_fraction(a: float, x: float) -> tuple[float, float]:
    """(P(a, x), Q(a, x)), each computed where it is accurate (the other is 1 minus it)."""
    if x <= 0:
        return 0.0, 1.0
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
        lower = min(1.0, total * math.exp(log_prefactor))
        return lower, 1.0 - lower
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
    upper = min(1.0, math.exp(log_prefactor) * h)
    return 1.0 - upper, upper


def regularized_lower_gamma(a: float, x: float) -> float:
    """P(a, x) = lower_gamma(a, x) / Gamma(a), for a > 0 and x >= 0."""
    return max(0.0, _series_and_fraction(a, x)[0])


def chi2_upper_tail(x: float, df: float) -> float:
    """P(chi2(df) > x): the p-value of a statistic x, accurate far into the tail (1e-300)."""
    if df <= 0:
        raise ValueError(f"need df > 0, got {df}")
    return max(0.0, _series_and_fraction(df / 2, x / 2)[1])


@lru_cache(maxsize=4096)
def chi2_quantile(p: float, df: float) -> float:
    """The x below which a chi-square variable with `df` degrees of freedom falls with chance p
    (`df` need not be whole)."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError(f"need 0 < p < 1 and df > 0, got p={p}, df={df}")
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


def noncentral_chi2_quantile(p: float, df: float, nc: float) -> float:
    """The p quantile of a noncentral chi-square with `df` degrees of freedom and noncentrality
    `nc` (Patnaik's approximation: exact for nc = 0)."""
    if nc < 0:
        raise ValueError(f"need nc >= 0, got {nc}")
    rho = (df + 2 * nc) / (df + nc)
    nu = (df + nc) ** 2 / (df + 2 * nc)
    return rho * chi2_quantile(p, nu)
