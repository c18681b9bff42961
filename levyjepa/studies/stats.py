"""The statistics of a two-arm study (:mod:`levyjepa.study`): t intervals and a verdict.

Every arm is trained once per seed, so a study yields ``n`` values per arm and metric. The
report gives, per arm, the mean and its Student t interval across seeds,

    mean ± t(0.975, n - 1) · sd / √n,   sd the sample standard deviation (divisor n - 1),

and, because both arms share the seeds, the **paired** difference ``d_i = B_i - A_i`` with its
own t interval (the same formula on the ``d_i``). Pairing removes what a seed does to both arms
alike (the initialisation, the data order), so the interval of ``d`` is usually much narrower
than the two arms' intervals side by side. The verdict reads that interval only: when it
contains 0, "no detectable difference"; otherwise B is higher or lower, by the mean difference.
With one seed the interval is undefined (``n - 1 = 0`` degrees of freedom). Below
:data:`MIN_SEEDS` paired seeds there is no verdict: with two, the standard deviation rests on
one degree of freedom (the interval is ``t(0.975, 1) = 12.7`` standard errors wide either way),
and two equal values, common for a metric that does not depend on the weights or is counted on
few test items, give a zero-width interval that says nothing about the spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

__all__ = ["MIN_SEEDS", "Interval", "no_verdict", "paired_difference", "t_interval", "verdict"]

MIN_SEEDS = 3
"""The fewest paired seeds a verdict is given for."""


@dataclass(frozen=True)
class Interval:
    """A sample mean with its t confidence interval.

    Attributes:
        mean: The sample mean (``nan`` for no values).
        low: The interval's lower end (``nan`` when undefined: fewer than 2 values).
        high: Its upper end (``nan`` when undefined).
        n: The number of values.
        sd: The sample standard deviation, divisor ``n - 1`` (``nan`` for ``n < 2``).
        confidence: The interval's coverage, e.g. 0.95.
    """

    mean: float
    low: float
    high: float
    n: int
    sd: float
    confidence: float = 0.95

    @property
    def defined(self) -> bool:
        """Whether the interval exists (at least 2 finite values)."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def half_width(self) -> float:
        """Half the interval's width (``nan`` when undefined)."""
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the closed interval (``False`` when undefined)."""
        return self.defined and self.low <= value <= self.high

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dictionary (``nan`` becomes ``None``)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """The mean of ``values`` and its two-sided Student t interval (``n - 1`` degrees of freedom).

    Args:
        values: The per-seed values (non-finite values make the result non-finite).
        confidence: The coverage, strictly between 0 and 1.

    Returns:
        The :class:`Interval`; for one value its mean only, for none all ``nan``.

    Raises:
        ValueError: ``confidence`` outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} must lie strictly between 0 and 1")
    n = len(values)
    nan = float("nan")
    if n == 0:
        return Interval(nan, nan, nan, 0, nan, confidence)
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(mean, nan, nan, 1, nan, confidence)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, sd, confidence)


def paired_difference(a: Sequence[float], b: Sequence[float],
                      confidence: float = 0.95) -> tuple[list[float], Interval]:
    """The per-seed differences ``b[i] - a[i]`` and the t interval of their mean.

    Args:
        a: Arm A's values, one per seed.
        b: Arm B's values for the same seeds, in the same order.
        confidence: The coverage.

    Returns:
        ``(differences, interval)``.

    Raises:
        ValueError: ``a`` and ``b`` differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"paired values differ in number: {len(a)} for A, {len(b)} for B")
    differences = [y - x for x, y in zip(a, b)]
    return differences, t_interval(differences, confidence)


def _amount(value: float) -> str:
    return f"{value:.4g}"


def no_verdict(n: int) -> str:
    """The verdict's place below :data:`MIN_SEEDS` seeds: ``no verdict: 2 seeds, at least 3
    are needed``."""
    return f"no verdict: {n} seed{'' if n == 1 else 's'}, at least {MIN_SEEDS} are needed"


def verdict(difference: Interval, *, name_b: str = "B") -> str:
    """The verdict on a paired difference ``B - A``, in plain words.

    Args:
        difference: The interval of the mean difference (:func:`paired_difference`).
        name_b: How arm B is called in the sentence.

    Returns:
        ``"no detectable difference"`` when the interval contains 0; ``"<B> higher by X"`` or
        ``"<B> lower by X"`` (X the mean difference's size, with the interval) when it does not;
        with fewer than :data:`MIN_SEEDS` seeds :func:`no_verdict`.
    """
    percent = f"{difference.confidence:.0%}"
    if difference.n < MIN_SEEDS:
        return no_verdict(difference.n)
    if not difference.defined:
        return "difference not finite: no verdict"
    where = f"({percent} CI [{_amount(difference.low)}, {_amount(difference.high)}])"
    if difference.contains(0.0):
        return f"no detectable difference {where}"
    direction = "higher" if difference.mean > 0 else "lower"
    return f"{name_b} {direction} by {_amount(abs(difference.mean))} {where}"
