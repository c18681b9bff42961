"""Jump laws of the compound Poisson part of a Lévy sheet (docs/method.md, Lévy-sheet prior).

A jump is a Gaussian scale mixture ``sqrt(tau) * v`` with ``v ~ N(0, I_K)`` and ``tau ~ rho``.
Projected on any unit direction it is ``sqrt(tau) * g`` with ``g ~ N(0, 1)``, whose
characteristic function is the *mixing transform* of ``rho`` (its Laplace transform at
``u^2 / 2``)::

    M_rho(u) = E_rho[exp(-tau u^2 / 2)]

=================  ==========================  ====================================================
name               rho                         M_rho(u)
=================  ==========================  ====================================================
``laplace``        Exp(rate alpha^2 / 2)       alpha^2 / (alpha^2 + u^2)
``variance_gamma`` Gamma(shape k, rate beta)   (beta / (beta + u^2 / 2))^k
``student_t``      InvGamma(nu / 2, nu / 2)    2 K_{nu/2}(sqrt(nu)|u|) / Gamma(nu/2)
                                               * (sqrt(nu)|u| / 2)^{nu/2}
=================  ==========================  ====================================================

The projected jump is then Laplace with scale ``1 / alpha``, variance-gamma, or Student-t with
``nu`` degrees of freedom (D. F. Andrews and C. L. Mallows, "Scale mixtures of normal
distributions", JRSS B 36, 1974). Transforms are evaluated in float64 NumPy: they only give
constants at the quadrature nodes. Each law also samples ``tau`` with a ``torch.Generator``
(for the sheet sampler and for Monte Carlo tests).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np
import torch
from scipy import special

__all__ = [
    "JUMP_LAWS",
    "JumpLaw",
    "LaplaceJumps",
    "StudentTJumps",
    "VarianceGammaJumps",
    "log_bessel_k",
    "make_jump_law",
    "standard_gamma",
]


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


class JumpLaw(ABC):
    """Law ``rho`` of the squared scale ``tau`` of a jump ``sqrt(tau) * v``."""

    name: ClassVar[str]

    @abstractmethod
    def log_mixing(self, u: np.ndarray) -> np.ndarray:
        """``log M_rho(u)`` in float64, same shape as ``u`` (even in ``u``, ``0`` at ``u = 0``)."""

    def mixing(self, u: np.ndarray) -> np.ndarray:
        """``M_rho(u) = E[exp(-tau u^2 / 2)]`` in float64, same shape as ``u``."""
        return np.exp(self.log_mixing(u))

    @property
    @abstractmethod
    def mean_tau(self) -> float:
        """``E[tau]``, the variance of a projected jump (``inf`` when it does not exist)."""

    @abstractmethod
    def sample_tau(
        self,
        n: int,
        *,
        generator: Optional[torch.Generator] = None,
        device: Optional[torch.device] = None,
    ) -> torch.Tensor:
        """Draw ``n`` i.i.d. values of ``tau``.

        Args:
            n: Number of draws.
            generator: Source of randomness (``None``: torch's global generator).
            device: Device of the result (default: the generator's, else CPU).

        Returns:
            float64 tensor ``(n,)``.
        """


@dataclass(frozen=True)
class LaplaceJumps(JumpLaw):
    """``tau ~ Exp(rate alpha^2 / 2)``: projected jumps are Laplace with scale ``1 / alpha``."""

    alpha: float = 1.0
    name: ClassVar[str] = "laplace"

    def __post_init__(self) -> None:
        _check_positive("alpha", self.alpha)

    def log_mixing(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        # log(alpha^2 / (alpha^2 + u^2)) = -log1p(u^2 / alpha^2), exact near u = 0.
        return -np.log1p(np.square(u / self.alpha))

    @property
    def mean_tau(self) -> float:
        return 2.0 / self.alpha**2

    def sample_tau(self, n, *, generator=None, device=None):
        return standard_gamma(1.0, n, generator=generator, device=device) * (2.0 / self.alpha**2)


@dataclass(frozen=True)
class VarianceGammaJumps(JumpLaw):
    """``tau ~ Gamma(shape, rate)``: projected jumps are variance-gamma.

    ``shape = 1, rate = alpha^2 / 2`` is :class:`LaplaceJumps` with that ``alpha``.
    """

    shape: float = 1.0
    rate: float = 0.5
    name: ClassVar[str] = "variance_gamma"

    def __post_init__(self) -> None:
        _check_positive("shape", self.shape)
        _check_positive("rate", self.rate)

    def log_mixing(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        # k * log(beta / (beta + u^2 / 2)) = -k * log1p(u^2 / (2 beta)).
        return -self.shape * np.log1p(np.square(u) / (2.0 * self.rate))

    @property
    def mean_tau(self) -> float:
        return self.shape / self.rate

    def sample_tau(self, n, *, generator=None, device=None):
        return standard_gamma(self.shape, n, generator=generator, device=device) / self.rate


@dataclass(frozen=True)
class StudentTJumps(JumpLaw):
    """``tau ~ InvGamma(nu / 2, nu / 2)``: projected jumps are Student-t with ``nu`` d.o.f.

    With ``a = nu / 2`` and ``x = sqrt(nu) |u|`` the transform is
    ``M(u) = 2 (x / 2)^a K_a(x) / Gamma(a)``, evaluated in log space: ``K_a(x) ~
    Gamma(a) / 2 (2 / x)^a`` explodes as ``x -> 0`` while ``(x / 2)^a`` vanishes (``M -> 1``),
    and ``K_a(x) ~ sqrt(pi / (2 x)) e^-x`` underflows for large ``x`` (``M -> 0``); see
    :func:`log_bessel_k`.
    """

    nu: float = 3.0
    name: ClassVar[str] = "student_t"

    def __post_init__(self) -> None:
        _check_positive("nu", self.nu)

    def log_mixing(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        a = 0.5 * self.nu
        x = math.sqrt(self.nu) * np.abs(u)
        out = np.zeros_like(x)  # M(0) = 1
        pos = x > 0
        xp = x[pos]
        log_k = log_bessel_k(a, xp)
        # Where even K_{a0+1}(x) overflows (x < ~1e-150 with a >= 1), 1 - M = O(x^2 log x)
        # is far below float64 resolution: M = 1.
        log_m = np.where(
            np.isfinite(log_k),
            math.log(2.0) + a * np.log(0.5 * xp) + log_k - special.gammaln(a),
            0.0,
        )
        out[pos] = np.minimum(log_m, 0.0)  # M <= 1; clip round-off
        return out

    @property
    def mean_tau(self) -> float:
        return self.nu / (self.nu - 2.0) if self.nu > 2 else math.inf

    def sample_tau(self, n, *, generator=None, device=None):
        # 1 / Gamma(shape nu/2, rate nu/2) = (nu / 2) / Gamma(nu / 2, 1).
        g = standard_gamma(0.5 * self.nu, n, generator=generator, device=device)
        return (0.5 * self.nu) / g


JUMP_LAWS: dict[str, type[JumpLaw]] = {
    law.name: law for law in (LaplaceJumps, VarianceGammaJumps, StudentTJumps)
}
"""Jump laws by name: ``laplace``, ``variance_gamma``, ``student_t``."""


def make_jump_law(
    name: str,
    *,
    alpha: float = 1.0,
    shape: float = 1.0,
    rate: float = 0.5,
    nu: float = 3.0,
) -> JumpLaw:
    """Build a jump law by name; each law reads only its own parameters.

    Args:
        name: ``laplace`` (reads ``alpha``), ``variance_gamma`` (``shape``, ``rate``) or
            ``student_t`` (``nu``).

    Raises:
        ValueError: for an unknown name (listing the valid ones) or a parameter that is not > 0.
    """
    if name == "laplace":
        return LaplaceJumps(alpha=alpha)
    if name == "variance_gamma":
        return VarianceGammaJumps(shape=shape, rate=rate)
    if name == "student_t":
        return StudentTJumps(nu=nu)
    raise ValueError(f"jumps must be one of {', '.join(JUMP_LAWS)}; got {name!r}")


def log_bessel_k(order: float, x: np.ndarray) -> np.ndarray:
    """``log K_order(x)`` for ``x > 0`` in float64, without overflow for large orders.

    ``log K = log(kve(order, x)) - x`` (``kve`` is exponentially scaled, so large ``x`` does not
    underflow). ``kve`` overflows for ``x`` small compared with the order (``K_a(x) ~
    Gamma(a) / 2 (2 / x)^a``); there the order is raised from ``a0 = order - floor(order)`` with
    the recurrence ``K_{v+1} = K_{v-1} + (2 v / x) K_v`` written for the ratios
    ``r_v = K_v / K_{v-1}``: ``r_{v+1} = 1 / r_v + 2 v / x``, a sum of positive terms (upward
    recurrence is the stable direction for ``K``), and ``log K_a = log K_{a0+1} + sum log r``.
    Entries where even the start ``K_{a0+1}`` overflows (``x`` below ~1e-150) are ``inf``.

    Args:
        order: The order ``a >= 0``.
        x: Positive arguments, any shape.

    Returns:
        ``log K_order(x)``, same shape as ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore"):
        direct = np.log(special.kve(order, x)) - x
    bad = ~np.isfinite(direct)
    if not bad.any() or order < 1:
        return direct
    xb = x[bad]
    a0 = order - math.floor(order)
    with np.errstate(over="ignore", divide="ignore"):
        log_k0 = np.log(special.kve(a0, xb)) - xb
        log_k1 = np.log(special.kve(a0 + 1.0, xb)) - xb  # log K_{a0+1}
    ratio = np.exp(log_k1 - log_k0)  # r_{a0+1}
    log_k = log_k1
    v = a0 + 1.0
    while v + 0.5 < order:  # raise the order from v to v + 1 until it reaches `order`
        ratio = 1.0 / ratio + 2.0 * v / xb
        log_k = log_k + np.log(ratio)
        v += 1.0
    direct[bad] = log_k
    return direct


def standard_gamma(
    shape: float,
    n: int,
    *,
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """``n`` draws of ``Gamma(shape, rate 1)`` with a ``torch.Generator`` (float64).

    torch's own gamma sampler takes no generator, so this is Marsaglia and Tsang's rejection
    method (G. Marsaglia and W. W. Tsang, "A simple method for generating gamma variables",
    ACM TOMS 26(3), 2000): for ``k >= 1``, ``d = k - 1/3``, ``c = 1 / sqrt(9 d)``, ``x ~ N(0,1)``,
    ``v = (1 + c x)^3``; accept ``d v`` when ``v > 0`` and
    ``log U < x^2 / 2 + d - d v + d log v``. For ``k < 1`` a ``Gamma(k + 1)`` draw is multiplied
    by ``U^(1/k)``.
    """
    if not shape > 0:
        raise ValueError(f"shape must be > 0, got {shape}")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    dtype = torch.float64
    k = shape + 1.0 if shape < 1 else shape
    d = k - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    accepted: list[torch.Tensor] = []
    have = 0
    while have < n:
        m = int(1.1 * (n - have)) + 16  # acceptance rate is above 0.95
        x = torch.randn(m, generator=generator, device=device, dtype=dtype)
        log_u = torch.rand(m, generator=generator, device=device, dtype=dtype).log()
        v = (1.0 + c * x) ** 3
        log_v = v.clamp_min(1e-300).log()
        ok = (v > 0) & (log_u < 0.5 * x * x + d - d * v + d * log_v)
        accepted.append(d * v[ok])
        have += int(ok.sum())
    out = torch.cat(accepted)[:n] if accepted else torch.empty(0, dtype=dtype, device=device)
    if shape < 1:
        u = torch.rand(n, generator=generator, device=device, dtype=dtype)
        out = out * torch.exp(u.log() / shape)
    return out
