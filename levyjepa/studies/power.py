"""The power of a study's paired t-test: what it can detect, and how many seeds it would need.

A study (:mod:`levyjepa.study`) compares two arms on ``n`` paired seeds through the differences
``d_i = B_i - A_i`` and calls a difference detected when the 95% t interval of their mean
excludes 0 (:func:`levyjepa.studies.stats.verdict`): that is the two-sided one-sample t-test of
``mean(d) = 0`` at level ``alpha = 0.05`` (the paired t-test). If the ``d_i`` are normal with
mean ``delta`` and standard deviation ``sd``, its statistic ``T = mean(d) / (s / √n)`` follows
the **noncentral t distribution** with ``n - 1`` degrees of freedom and noncentrality

    nc = delta · √n / sd,

so the test's power, the probability that it detects a true difference ``delta``, is exactly

    power(delta) = P(|T| > t(1 - alpha/2, n - 1)),   T ~ nct(n - 1, nc)

(Cohen 1988, *Statistical Power Analysis for the Behavioral Sciences*, 2nd ed., chapter 2,
the t-test for a paired sample, whose tables this formula generates; Owen 1965, "A special case
of a bivariate non-central t-distribution", Biometrika 52). Power grows with ``|delta|`` and
with ``n``, which gives the two inverse questions answered here:

- :func:`smallest_detectable_difference`: the smallest ``delta`` detected with the given power
  (80% by convention) at ``n`` seeds, solved for with Brent's method;
- :func:`seeds_needed`: the fewest paired seeds that detect a stated ``delta`` with that power.

In a study ``sd`` is the measured sample standard deviation of the paired differences, a plug-in
for the true one; with few seeds it is itself uncertain (with 3 seeds it rests on 2 degrees of
freedom), so both numbers describe the design under the spread seen, not a guarantee. They do
not use the measured mean difference: this is not "observed power", which only restates the
verdict. With fewer than 2 seeds, or paired differences without spread (``sd`` 0) or not finite,
the test does not exist and the functions return ``nan`` (:func:`undefined_reason` says why).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy import optimize, stats

__all__ = ["POWER", "MAX_SEEDS", "power", "seeds_needed", "smallest_detectable_difference",
           "undefined_reason"]

POWER = 0.8
"""The conventional power a design is judged by (Cohen 1988)."""
MAX_SEEDS = 1000
"""Where :func:`seeds_needed` stops searching."""


def undefined_reason(sd: float, n: int) -> Optional[str]:
    """Why a paired t-test of ``n`` differences with standard deviation ``sd`` has no power.

    Args:
        sd: The sample standard deviation of the paired differences.
        n: The number of pairs.

    Returns:
        ``"fewer than 2 seeds"``, ``"the paired differences are not finite"``, ``"the paired
        differences have no spread"``, or ``None`` when the power is defined.
    """
    if n < 2:
        return "fewer than 2 seeds"
    if sd is None or not math.isfinite(sd):
        return "the paired differences are not finite"
    if sd <= 0.0:
        return "the paired differences have no spread"
    return None


def _check(power_: float, alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha!r} must lie strictly between 0 and 1")
    if not alpha < power_ < 1.0:
        raise ValueError(f"power={power_!r} must lie between alpha ({alpha}) and 1")


def _power_of(nc: np.ndarray | float, df: np.ndarray | float, alpha: float) -> np.ndarray:
    """``P(|T| > t(1 - alpha/2, df))`` for ``T ~ nct(df, nc)``, ``nc >= 0`` (array-wise).

    The lower tail ``P(T < -c)`` is computed as ``P(T' > c)``, ``T' ~ nct(df, -nc)``: scipy's
    ``nct.cdf`` far in the lower tail returns ``nan`` where the survival function does not.
    """
    df, nc = np.asarray(df, dtype=float), np.asarray(nc, dtype=float)
    critical = stats.t.ppf(1.0 - alpha / 2.0, df)
    central = 2.0 * stats.t.sf(critical, df)  # nc = 0: exactly alpha (nct is slow to say so)
    tails = stats.nct.sf(critical, df, np.where(nc > 0, nc, 1.0)) + stats.nct.sf(
        critical, df, -np.where(nc > 0, nc, 1.0))
    return np.where(nc > 0, tails, central)


def power(delta: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """The power of the two-sided paired t-test at ``n`` pairs against a true difference.

    ``P(|T| > t(1 - alpha/2, n - 1))`` with ``T ~ nct(n - 1, |delta| · √n / sd)``: the
    probability that a study of ``n`` paired seeds, whose differences are normal with mean
    ``delta`` and standard deviation ``sd``, finds an interval (confidence ``1 - alpha``) that
    excludes 0. At ``delta = 0`` it is ``alpha``, the false-positive rate.

    Args:
        delta: The true mean difference (its sign does not matter).
        sd: The standard deviation of the paired differences.
        n: The number of pairs (seeds).
        alpha: The test's level (0.05: the study's 95% interval).

    Returns:
        The power in ``[alpha, 1]``; ``nan`` when undefined (:func:`undefined_reason`).

    Raises:
        ValueError: ``alpha`` outside (0, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha!r} must lie strictly between 0 and 1")
    if undefined_reason(sd, n) is not None or not math.isfinite(delta):
        return math.nan
    return float(_power_of(abs(delta) * math.sqrt(n) / sd, n - 1, alpha))


def smallest_detectable_difference(sd: float, n: int, power: float = POWER,
                                   alpha: float = 0.05) -> float:
    """The smallest true difference the paired t-test at ``n`` pairs detects with ``power``.

    Solves ``P(|T| > t(1 - alpha/2, n - 1)) = power``, ``T ~ nct(n - 1, nc)``, for the
    noncentrality ``nc`` with :func:`scipy.optimize.brentq` (power rises with ``nc`` from
    ``alpha`` at 0), then ``delta = nc · sd / √n``: the minimum detectable effect. For large
    ``n`` it approaches ``(z(1 - alpha/2) + z(power)) · sd / √n = 2.80 · sd / √n``; with few
    pairs it is larger (3 pairs: 5.65 · sd / √3, the test estimating ``sd`` from 2 degrees of
    freedom; 2 pairs: 16.3 · sd / √2).

    Args:
        sd: The standard deviation of the paired differences (a study's measured one).
        n: The number of pairs (seeds).
        power: The power asked for, between ``alpha`` and 1 (80% by convention).
        alpha: The test's level.

    Returns:
        The difference, in the metric's units; ``nan`` when undefined (:func:`undefined_reason`).

    Raises:
        ValueError: ``alpha`` outside (0, 1) or ``power`` outside (``alpha``, 1).
    """
    _check(power, alpha)
    if undefined_reason(sd, n) is not None:
        return math.nan
    df = n - 1

    def short_of(nc: float) -> float:
        return float(_power_of(nc, df, alpha)) - power

    high = float(stats.t.ppf(1.0 - alpha / 2.0, df) + stats.norm.ppf(power)) + 1.0
    while short_of(high) < 0.0:  # heavy tails at 1 degree of freedom need a wider bracket
        high *= 2.0
    nc = optimize.brentq(short_of, 0.0, high, xtol=1e-12, rtol=1e-12)
    return nc * sd / math.sqrt(n)


def seeds_needed(delta: float, sd: float, power: float = POWER, alpha: float = 0.05,
                 max_n: int = MAX_SEEDS) -> float:
    """The fewest paired seeds ``n >= 2`` whose paired t-test detects ``delta`` with ``power``.

    The smallest ``n`` with :func:`power` ``(delta, sd, n, alpha) >= power`` (power rises with
    ``n``), searched over ``2 .. max_n`` at once. The normal approximation ``n ≈ ((z(1 - alpha/2)
    + z(power)) · sd / delta)^2 + z(1 - alpha/2)^2 / 2`` (Guenther 1981, "Sample size formulas
    for normal theory t tests", The American Statistician 35) is within one seed of it.

    Args:
        delta: The true difference to detect, > 0 (in the metric's units).
        sd: The standard deviation of the paired differences.
        power: The power asked for.
        alpha: The test's level.
        max_n: The largest ``n`` tried, at least 2.

    Returns:
        ``n`` (an ``int``); ``math.inf`` when even ``max_n`` pairs fall short; ``nan`` when
        ``sd`` is 0 or not finite.

    Raises:
        ValueError: ``delta`` not a number > 0, ``max_n`` below 2, ``alpha`` or ``power`` out of
            range.
    """
    _check(power, alpha)
    if not (math.isfinite(delta) and delta > 0.0):
        raise ValueError(f"delta={delta!r} must be a number > 0")
    if max_n < 2:
        raise ValueError(f"max_n={max_n!r} must be at least 2")
    if undefined_reason(sd, 2) is not None:
        return math.nan
    ns = np.arange(2, max_n + 1)
    enough = np.flatnonzero(_power_of(delta * np.sqrt(ns) / sd, ns - 1, alpha) >= power)
    return int(ns[enough[0]]) if enough.size else math.inf
