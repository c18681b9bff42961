"""The correlation dimension of an embedding (Grassberger and Procaccia, "Measuring the
strangeness of strange attractors", Physica D 9, 1983).

For ``N`` points the correlation sum at radius ``r`` is the fraction of distinct pairs closer
than ``r``,

    C(r) = 2 / (N (N - 1)) * #{i < j : ||x_i - x_j|| < r},

and on a set of dimension ``D`` it scales as ``C(r) ~ r^D`` for small ``r``. The estimate is the
least-squares slope of ``log C`` against ``log r`` over a range of small radii. Here the range
is set by the pairs themselves: radii log-spaced between the distances at the ``low`` and
``high`` quantiles of all pairwise distances (defaults 0.1% and 5%), small enough to sit below
the set's curvature and large enough that every radius counts at least ``low`` of the pairs.
With a finite sample the estimate is biased low for high dimensions (the small-radius region
is reached by few pairs); it is a diagnostic of how many directions the embedding uses
locally, beside the global rank metrics (:mod:`levyjepa.diagnostics.representation`).
"""

from __future__ import annotations

import math

import torch

__all__ = ["correlation_dimension", "correlation_sum"]


def _pair_distances(x: torch.Tensor) -> torch.Tensor:
    """The ``N (N - 1) / 2`` distances between distinct rows of ``x`` (float64), sorted."""
    x = x.detach().to(torch.float64)
    d = torch.cdist(x, x)
    i, j = torch.triu_indices(len(x), len(x), offset=1)
    return d[i, j].sort().values


def correlation_sum(x: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """``C(r)`` at each radius: the fraction of distinct pairs of rows closer than ``r``.

    Args:
        x: ``(N, D)`` points, ``N >= 2``.
        radii: ``(R,)`` radii.

    Returns:
        ``(R,)`` float64 fractions in [0, 1].
    """
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be (N, D) with N >= 2 points, got shape {tuple(x.shape)}")
    pairs = _pair_distances(x)
    below = torch.searchsorted(pairs, radii.to(torch.float64).contiguous(), right=False)
    return below.to(torch.float64) / len(pairs)


def correlation_dimension(x: torch.Tensor, *, low: float = 0.001, high: float = 0.05,
                          radii: int = 12, max_points: int = 2000) -> float:
    """The Grassberger-Procaccia estimate of the correlation dimension of the rows of ``x``.

    Args:
        x: ``(N, D)`` points (an embedding: one row per item).
        low: Quantile of the pairwise distances at the smallest radius, in (0, high).
        high: Quantile at the largest radius, in (low, 1).
        radii: Number of log-spaced radii the slope is fitted on (>= 2).
        max_points: Use the first ``max_points`` rows (the cost is quadratic in N).

    Returns:
        The slope of ``log C(r)`` against ``log r``; ``nan`` when the points have no spread at
        those quantiles (e.g. repeated points).

    Raises:
        ValueError: naming the argument out of range.
    """
    if not 0.0 < low < high < 1.0:
        raise ValueError(f"need 0 < low < high < 1, got low={low!r}, high={high!r}")
    if radii < 2:
        raise ValueError(f"radii must be >= 2, got {radii!r}")
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be (N, D) with N >= 2 points, got shape {tuple(x.shape)}")
    x = x[:max_points]
    pairs = _pair_distances(x)
    r_low = float(pairs[int(low * (len(pairs) - 1))])
    r_high = float(pairs[int(high * (len(pairs) - 1))])
    if not (r_low > 0.0 and r_high > r_low):
        return math.nan
    r = torch.logspace(math.log10(r_low), math.log10(r_high), radii, dtype=torch.float64)
    c = torch.searchsorted(pairs, r, right=True).to(torch.float64) / len(pairs)
    keep = c > 0
    log_r, log_c = r[keep].log(), c[keep].log()
    if len(log_r) < 2:
        return math.nan
    dr = log_r - log_r.mean()
    return float((dr * (log_c - log_c.mean())).sum() / (dr * dr).sum())
