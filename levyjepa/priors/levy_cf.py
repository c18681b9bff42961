"""Characteristic function of a Lévy sheet's cell increments and its Epps-Pulley quadrature.

docs/method.md, Lévy-sheet prior. For the model ``Z = sigma * W + J`` (``W`` a Brownian sheet,
``J`` a compound
Poisson sheet of intensity ``lam`` with jumps ``sqrt(tau) v``, ``tau ~ rho``) the increment over
a cell of area (or volume) ``A``, projected on any unit direction, has::

    log phi_A(u) = A * log phi_1(u),   log phi_1(u) = -sigma^2 u^2 / 2 + lam * (M_rho(u) - 1)

(infinite divisibility: disjoint cells add independent increments). Any Lévy-type prior works
the same way: give ``log phi_1`` and the area scaling comes for free.

The Epps-Pulley statistic integrates the squared CF error against ``w(u) = exp(-c u)`` on
``u > 0``. :func:`laguerre_quadrature` picks ``c`` from the law itself: ``u_max`` solves
``log phi_1(u_max) = -4`` (Brent's method on ``[0, ub]``, ``ub`` doubled from 1 until the sign
changes), ``c = 10 / u_max`` and the ``u_i = x_i / c``, ``w_i = omega_i / c`` come from the
17-point Gauss-Laguerre rule ``(x_i, omega_i)`` for ``int_0^inf f(x) e^-x dx``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.polynomial.laguerre import laggauss
from scipy.optimize import brentq

from levyjepa.priors.jump_laws import JumpLaw

__all__ = ["LevyLogCF", "Quadrature", "find_u_max", "laguerre_quadrature", "levy_log_cf"]

LogCF = Callable[[np.ndarray], np.ndarray]
"""A log characteristic function per unit cell: float64 ``u`` to float64 ``log phi_1(u)``."""


def levy_log_cf(u: np.ndarray, *, sigma: float, lam: float, law: JumpLaw) -> np.ndarray:
    """``log phi_1(u) = -sigma^2 u^2 / 2 + lam * (M_rho(u) - 1)`` (unit cell), float64."""
    u = np.asarray(u, dtype=np.float64)
    # expm1(log M) keeps M - 1 accurate where M is close to 1 (small u).
    return -0.5 * sigma**2 * np.square(u) + lam * np.expm1(law.log_mixing(u))


@dataclass(frozen=True)
class LevyLogCF:
    """:func:`levy_log_cf` as a picklable callable ``u -> log phi_1(u)``.

    Args:
        sigma: Brownian scale (> 0).
        lam: Jump intensity per unit cell (> 0).
        law: Jump law (see :mod:`levyjepa.priors.jump_laws`).
    """

    sigma: float
    lam: float
    law: JumpLaw

    def __call__(self, u: np.ndarray) -> np.ndarray:
        return levy_log_cf(u, sigma=self.sigma, lam=self.lam, law=self.law)


class Quadrature(NamedTuple):
    """Gauss-Laguerre rule for ``int_0^inf f(u) exp(-c u) du ~ sum_i w_i f(u_i)``.

    Attributes:
        u_max: Root of ``log phi_1(u) = level``.
        c: Decay rate of the weight, ``decay / u_max``.
        nodes: ``u_i = x_i / c``, float64 ``(Q,)``.
        weights: ``w_i = omega_i / c``, float64 ``(Q,)``.
    """

    u_max: float
    c: float
    nodes: np.ndarray
    weights: np.ndarray


def find_u_max(log_cf: LogCF, *, level: float = -4.0, max_doublings: int = 64) -> float:
    """Root of ``log_cf(u) = level`` by Brent's method on ``[0, ub]``, ``ub = 1, 2, 4, ...``.

    Raises:
        ValueError: if ``log_cf`` is not finite, or does not go below ``level`` before
            ``u = 2^max_doublings`` (e.g. a pure jump law whose ``lam`` is below ``-level``).
    """

    def f(u: float) -> float:
        value = float(np.asarray(log_cf(np.array([u], dtype=np.float64))).reshape(-1)[0])
        if not math.isfinite(value):
            raise ValueError(f"log characteristic function is not finite at u={u:g}: {value}")
        return value - level

    if not f(0.0) > 0:
        raise ValueError(
            f"log characteristic function at u=0 must be above {level}, got {f(0.0) + level:g}"
        )
    ub = 1.0
    for _ in range(max_doublings):
        if f(ub) <= 0:
            return float(brentq(f, 0.0, ub, xtol=1e-14, rtol=4 * np.finfo(float).eps))
        ub *= 2.0
    raise ValueError(
        f"log characteristic function never reaches {level} on [0, {ub:g}]; "
        "the law needs a Gaussian part (sigma > 0) or more mass in its jumps"
    )


def laguerre_quadrature(
    log_cf: LogCF, *, points: int = 17, level: float = -4.0, decay: float = 10.0
) -> Quadrature:
    """The Epps-Pulley quadrature of docs/method.md, Lévy-sheet prior for a log CF per unit cell.

    Args:
        log_cf: ``u -> log phi_1(u)`` (float64 arrays).
        points: Number of Gauss-Laguerre nodes.
        level: ``u_max`` solves ``log_cf(u_max) = level``.
        decay: ``c = decay / u_max``.

    Returns:
        The :class:`Quadrature`.
    """
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    u_max = find_u_max(log_cf, level=level)
    c = decay / u_max
    x, omega = laggauss(points)
    return Quadrature(u_max=u_max, c=c, nodes=x / c, weights=omega / c)
