"""The registered Lévy-sheet priors ``levy2d`` (images) and ``levy3d`` (video): Brownian motion
plus compound-Poisson jumps (docs/method.md, Lévy-sheet prior).

Each is a :class:`levyjepa.priors.levy_sheet.LevySheetPrior` whose log characteristic function of
a unit cell is a :class:`levyjepa.priors.levy_cf.LevyLogCF`, validated here.
"""

from __future__ import annotations

import math
from typing import Optional

from levyjepa.core.registry import PRIORS
from levyjepa.priors.jump_laws import JUMP_LAWS, JumpLaw, make_jump_law
from levyjepa.priors.levy_cf import LevyLogCF
from levyjepa.priors.levy_sheet import LevySheetPrior
from levyjepa.priors.stencils import families_2d, families_3d

__all__ = ["LevySheet2D", "LevySheet3D"]


def _finite_positive(prior: str, name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{prior}: {name} must be a finite number > 0, got {value!r}")


class _JumpDiffusionSheet(LevySheetPrior):
    """A :class:`LevySheetPrior` whose ``log_cf`` is a :class:`LevyLogCF` (Brownian + jumps)."""

    log_cf: LevyLogCF

    @property
    def law(self) -> JumpLaw:
        """The jump law."""
        return self.log_cf.law

    @property
    def sigma(self) -> float:
        """Scale of the Brownian part."""
        return self.log_cf.sigma

    @property
    def lam(self) -> float:
        """Jump intensity per unit cell."""
        return self.log_cf.lam

    def extra_repr(self) -> str:
        return f"jumps={self.law}, sigma={self.sigma:g}, lam={self.lam:g}, " + super().extra_repr()


def _levy_log_cf(
    prior: str,
    *,
    jumps: str,
    alpha: float,
    sigma: float,
    lam: float,
    shape: Optional[float],
    rate: Optional[float],
    nu: Optional[float],
) -> LevyLogCF:
    """Validate the parameters of ``levy2d`` / ``levy3d`` and build their ``log phi_1``."""
    _finite_positive(prior, "sigma", sigma)
    _finite_positive(prior, "lam", lam)
    if jumps not in JUMP_LAWS:
        raise ValueError(f"{prior}: jumps must be one of {', '.join(JUMP_LAWS)}; got {jumps!r}")
    owner = {"shape": "variance_gamma", "rate": "variance_gamma", "nu": "student_t"}
    given = {"shape": shape, "rate": rate, "nu": nu}
    for param, value in given.items():
        if value is not None and owner[param] != jumps:
            raise ValueError(
                f"{prior}: {param} applies to jumps={owner[param]!r} only, not jumps={jumps!r}"
            )
    if alpha != 1.0 and jumps != "laplace":
        raise ValueError(f"{prior}: alpha applies to jumps='laplace' only, not jumps={jumps!r}")
    defaults = {"shape": 1.0, "rate": 0.5, "nu": 3.0}
    params = {k: defaults[k] if v is None else v for k, v in given.items()}
    try:
        law = make_jump_law(jumps, alpha=alpha, **params)
    except ValueError as err:
        raise ValueError(f"{prior}: {err}") from None
    return LevyLogCF(sigma=float(sigma), lam=float(lam), law=law)


@PRIORS.register("levy2d")
class LevySheet2D(_JumpDiffusionSheet):
    """Lévy-sheet prior on an image token field ``(B, H', W', K)`` (docs/method.md, Lévy-sheet
    prior).

    ``log phi_1(u) = -sigma^2 u^2 / 2 + lam (M(u) - 1)`` with ``M`` the jump law's mixing
    transform (:mod:`levyjepa.priors.jump_laws`); axis-aligned cells of area 1 and 45-degree
    cells of area 2.

    Args:
        jumps: Jump law: ``laplace``, ``variance_gamma`` or ``student_t``.
        alpha: Laplace rate (``laplace`` only; projected jumps have scale ``1 / alpha``).
        sigma: Scale of the Brownian part.
        lam: Jump intensity per unit cell.
        shape: Gamma shape ``k`` (``variance_gamma`` only; default 1).
        rate: Gamma rate ``beta`` (``variance_gamma`` only; default 0.5, which with ``shape=1``
            is ``laplace`` with ``alpha=1``).
        nu: Degrees of freedom (``student_t`` only; default 3).
        rotate: Randomly rotate channels each step.
        scale_by_n: Multiply ``EP_b`` by its number of increments.
    """

    prior_name = "levy2d"

    def __init__(
        self,
        *,
        jumps: str = "laplace",
        alpha: float = 1.0,
        sigma: float = 0.125,
        lam: float = 2.0,
        shape: Optional[float] = None,
        rate: Optional[float] = None,
        nu: Optional[float] = None,
        rotate: bool = True,
        scale_by_n: bool = False,
    ) -> None:
        log_cf = _levy_log_cf(
            self.prior_name,
            jumps=jumps,
            alpha=alpha,
            sigma=sigma,
            lam=lam,
            shape=shape,
            rate=rate,
            nu=nu,
        )
        super().__init__(
            log_cf=log_cf, families=families_2d(), rotate=rotate, scale_by_n=scale_by_n
        )


@PRIORS.register("levy3d")
class LevySheet3D(_JumpDiffusionSheet):
    """Lévy-sheet prior on a video token field ``(B, T', H', W', K)`` (docs/method.md, Lévy prior
    in 2D + time).

    Same law as :class:`LevySheet2D`; ``2x2x2`` cells of volume ``time_scale`` and 45-degree x
    time cells of volume ``2 * time_scale``.

    Args:
        time_scale: One tubelet step in time, in units of one patch step in space.
        **others: As :class:`LevySheet2D`.
    """

    prior_name = "levy3d"

    def __init__(
        self,
        *,
        jumps: str = "laplace",
        alpha: float = 1.0,
        sigma: float = 0.125,
        lam: float = 2.0,
        shape: Optional[float] = None,
        rate: Optional[float] = None,
        nu: Optional[float] = None,
        rotate: bool = True,
        scale_by_n: bool = False,
        time_scale: float = 1.0,
    ) -> None:
        _finite_positive(self.prior_name, "time_scale", time_scale)
        log_cf = _levy_log_cf(
            self.prior_name,
            jumps=jumps,
            alpha=alpha,
            sigma=sigma,
            lam=lam,
            shape=shape,
            rate=rate,
            nu=nu,
        )
        super().__init__(
            log_cf=log_cf,
            families=families_3d(float(time_scale)),
            rotate=rotate,
            scale_by_n=scale_by_n,
        )
        self.time_scale = float(time_scale)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", time_scale={self.time_scale:g}"
