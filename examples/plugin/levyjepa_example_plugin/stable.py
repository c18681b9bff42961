"""A Lévy-type prior given by its characteristic function alone: the symmetric alpha-stable sheet.

"A prior is a characteristic function plus a stencil." This module supplies only the log
characteristic function of one unit cell's increment and picks levyjepa's stock 2D stencil
families; the cell-size scaling, the Gauss-Laguerre quadrature, the channel rotation, the
Epps-Pulley statistic and the distributed reduction all come from
:class:`levyjepa.priors.levy_sheet.LevySheetPrior`.

The increment of the sheet over a cell of area ``A`` is a Brownian part plus a symmetric
alpha-stable part, ``log phi_A(u) = A * log phi_1(u)`` with::

    log phi_1(u) = -sigma^2 u^2 / 2 - (scale * |u|)^stability

The stable part is ``S_alpha(scale, 0, 0)`` in the parametrisation of G. Samorodnitsky and
M. S. Taqqu, "Stable Non-Gaussian Random Processes", Chapman & Hall, 1994 (definition 1.1.6),
with ``alpha = stability``; an alpha-stable sheet is their independently scattered stable random
measure (chapter 3), so a cell of area ``A`` has scale ``scale * A^(1 / stability)``. For
``stability = 2`` the stable part is Gaussian with variance ``2 scale^2``; for ``stability < 2``
it has no variance (heavy, power-law tails), which a moment-based prior cannot express.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from levyjepa import PRIORS
from levyjepa.priors.levy_sheet import LevySheetPrior
from levyjepa.priors.stencils import families_2d

__all__ = ["StableLogCF", "StableSheet2D"]


@dataclass(frozen=True)
class StableLogCF:
    """``u -> -sigma^2 u^2 / 2 - (scale |u|)^stability``, float64; picklable (no lambda)."""

    stability: float
    scale: float
    sigma: float

    def __call__(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        return -0.5 * self.sigma**2 * np.square(u) - np.power(
            self.scale * np.abs(u), self.stability
        )


def _number(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"stable_sheet2d: {name} must be a finite number, got {value!r}")
    return float(value)


@PRIORS.register("stable_sheet2d")
class StableSheet2D(LevySheetPrior):
    """Alpha-stable + Brownian sheet prior on an image token field ``(B, H', W', K)``.

    Axis-aligned cells of area 1 and 45-degree cells of area 2 (``families_2d``), as ``levy2d``.

    Args:
        stability: Stability index ``alpha`` in ``(0, 2]`` (2: Gaussian; 1: Cauchy).
        scale: Scale of the stable part per unit cell (>= 0).
        sigma: Scale of the Brownian part per unit cell (>= 0); ``scale`` or ``sigma`` > 0.
        rotate: Randomly rotate channels each step.
    """

    prior_name = "stable_sheet2d"
    log_cf: StableLogCF

    def __init__(
        self,
        *,
        stability: float = 1.5,
        scale: float = 0.5,
        sigma: float = 0.0,
        rotate: bool = True,
    ) -> None:
        stability = _number("stability", stability)
        scale = _number("scale", scale)
        sigma = _number("sigma", sigma)
        if not 0.0 < stability <= 2.0:
            raise ValueError(f"stable_sheet2d: stability must be in (0, 2], got {stability}")
        if scale < 0 or sigma < 0:
            raise ValueError(f"stable_sheet2d: scale and sigma must be >= 0, got {scale}, {sigma}")
        if scale == 0 and sigma == 0:
            raise ValueError("stable_sheet2d: scale or sigma must be > 0 (both are 0)")
        super().__init__(
            log_cf=StableLogCF(stability=stability, scale=scale, sigma=sigma),
            families=families_2d(),
            rotate=rotate,
        )

    def extra_repr(self) -> str:
        cf = self.log_cf
        return (
            f"stability={cf.stability:g}, scale={cf.scale:g}, sigma={cf.sigma:g}, "
            + super().extra_repr()
        )
