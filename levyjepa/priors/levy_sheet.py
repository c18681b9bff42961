"""The Lévy-sheet prior on the patch-token field: the statistic every Lévy-type prior shares.

The registered priors ``levy2d`` (images) and ``levy3d`` (video) are in
:mod:`levyjepa.priors.jump_diffusion_sheets`.

docs/method.md, Lévy-sheet priors. The token field ``tokens_proj`` ``(B, *grid, K)`` is asked to
look like a
Lévy sheet: its cell increments (mixed finite differences, :mod:`levyjepa.priors.stencils`)
should be i.i.d. with the sheet's characteristic function (:mod:`levyjepa.priors.levy_cf`).
Per step, on a batch of fields:

1. if ``rotate``, rotate channels ``X @ Q`` by a Haar-random orthogonal ``Q`` (``K x K``) drawn
   from a generator seeded by ``step`` (identical on every process; the prior is isotropic in
   channel space, so this only decorrelates which channels get which stencil);
2. channel ``c`` takes orientation family ``c % 2``: axis-aligned (cell area 1; ``2x2x2`` cells
   of volume ``time_scale`` in 3D) or 45-degree (area 2; 45-degree x time, ``2 * time_scale``);
3. per field ``b`` and family, all increments (all positions, all of the family's channels) are
   one sample, compared with ``phi_A = exp(A log phi_1)`` by the Epps-Pulley statistic
   ``EP_b`` (:mod:`levyjepa.priors.epps_pulley`);
4. the loss is the mean over families of the mean over the *global* batch of ``EP_b``.

As in the seed, ``EP_b`` is not multiplied by the number of increments (``scale_by_n=False``),
so the value is comparable with the seed's ``train/within``.

**Writing another Lévy-type prior.** A prior is a characteristic function plus stencils: give
:class:`LevySheetPrior` the log characteristic function of one *unit* cell's increment (float64
NumPy in, float64 out, even in ``u``, ``0`` at ``u = 0``) and the stencil families; the cell-size
scaling ``log phi_A = A log phi_1``, the quadrature, the rotation, the Epps-Pulley statistic and
the distributed reduction are shared. For example a symmetric alpha-stable sheet,
``log phi_1(u) = -(scale |u|)^a``::

    import functools
    import numpy as np
    from levyjepa import PRIORS
    from levyjepa.priors.levy_sheet import LevySheetPrior
    from levyjepa.priors.stencils import families_2d

    def stable_log_cf(u: np.ndarray, *, a: float, scale: float) -> np.ndarray:
        return -np.power(scale * np.abs(u), a)

    @PRIORS.register("stable2d")
    class Stable2D(LevySheetPrior):
        prior_name = "stable2d"

        def __init__(self, *, a: float = 1.5, scale: float = 0.2, rotate: bool = True) -> None:
            if not 0.0 < a <= 2.0:
                raise ValueError(f"stable2d: a must be in (0, 2], got {a}")
            if not scale > 0:
                raise ValueError(f"stable2d: scale must be > 0, got {scale}")
            super().__init__(
                log_cf=functools.partial(stable_log_cf, a=a, scale=scale),
                families=families_2d(),
                rotate=rotate,
            )

A module-level function (or ``functools.partial`` of one) keeps the prior picklable; a lambda
works too but is not picklable. ``examples/plugin/levyjepa_example_plugin/stable.py`` ships this
prior, with a Brownian part, as the installable plugin prior ``stable_sheet2d``.

**A caveat of the model (a fact, not a bug of this code).** No field has both families at their
nominal law. On a sheet built from axis-aligned cells (cumulative sums along the grid axes) the
45-degree stencil does not cover a diamond: it sums strips of cells that reach the grid's edge,
with a variance growing with the position. Conversely, on a sheet built from 45-degree cells the
axis-aligned stencil is not a cell increment. :func:`levyjepa.priors.sheet_sampler.
sample_levy_sheet` draws either orientation, and the tests check each family on the sheet it
describes. The statistic here is the seed's, as docs/method.md, Lévy-sheet prior states it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from levyjepa.core.dist import all_reduce_sum
from levyjepa.priors.epps_pulley import epps_pulley
from levyjepa.priors.levy_cf import LogCF, laguerre_quadrature
from levyjepa.priors.stencils import StencilFamily

__all__ = ["LevySheetPrior", "haar_orthogonal"]

_ROTATION_SALT = 0x1E5F_5EED  # keeps Q's stream apart from other priors seeded by the step
_GRID_NAMES = {2: ("H'", "W'"), 3: ("T'", "H'", "W'")}


def haar_orthogonal(k: int, *, seed: int) -> torch.Tensor:
    """A Haar-distributed ``k x k`` orthogonal matrix, float64 on CPU, determined by ``seed``.

    QR of a standard Gaussian matrix, with the columns of ``Q`` multiplied by the signs of
    ``diag(R)`` so that ``R`` has a positive diagonal: only then is ``Q`` Haar (F. Mezzadri,
    "How to generate random matrices from the classical compact groups", Notices AMS 54, 2007).
    Drawn on CPU so every process and device type gets the same matrix.
    """
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(k, k, generator=gen, dtype=torch.float64))
    signs = torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(torch.float64)
    return q * signs


class LevySheetPrior(nn.Module):
    """Epps-Pulley distance of a field's cell increments to a Lévy sheet's law.

    Constants (nodes, weights and the target CF per family) are computed once here in float64
    and kept as non-persistent float32 buffers ``nodes`` ``(Q,)``, ``weights`` ``(Q,)`` and
    ``phi`` ``(F, Q)``.

    Args:
        log_cf: ``u -> log phi_1(u)``, the log CF of one unit cell's increment (float64 NumPy).
        families: Orientation families; channel ``c`` takes family ``c % len(families)``.
        rotate: Rotate channels by a random orthogonal matrix seeded by ``step``.
        scale_by_n: Multiply ``EP_b`` by its number of increments (SIGReg's scaling; the seed
            does not).
    """

    prior_name: ClassVar[str] = "levy sheet"
    """Name used in error messages (the registered name in subclasses)."""

    def __init__(
        self,
        *,
        log_cf: LogCF,
        families: Sequence[StencilFamily],
        rotate: bool = True,
        scale_by_n: bool = False,
    ) -> None:
        super().__init__()
        families = tuple(families)
        if not families:
            raise ValueError(f"{self.prior_name}: families must not be empty")
        if len({len(f.min_grid) for f in families}) != 1:
            raise ValueError(f"{self.prior_name}: all families must have the same grid rank")
        self.log_cf = log_cf
        self.families = families
        self.rotate = bool(rotate)
        self.scale_by_n = bool(scale_by_n)
        quad = laguerre_quadrature(log_cf)
        self.u_max, self.c = quad.u_max, quad.c
        log_phi_1 = np.asarray(log_cf(quad.nodes), dtype=np.float64)
        # Infinite divisibility: a cell of size A has log phi_A = A * log phi_1.
        phi = np.stack([np.exp(f.cell_area * log_phi_1) for f in families])  # (F, Q)
        if not np.all(np.isfinite(phi)):
            raise ValueError(
                f"{self.prior_name}: the characteristic function is not finite "
                "at the quadrature nodes"
            )
        self.register_buffer("nodes", torch.from_numpy(quad.nodes).float(), persistent=False)
        self.register_buffer("weights", torch.from_numpy(quad.weights).float(), persistent=False)
        self.register_buffer("phi", torch.from_numpy(phi).float(), persistent=False)

    @property
    def grid_rank(self) -> int:
        """Number of grid axes (2 for images, 3 for video)."""
        return len(self.families[0].min_grid)

    def rotation(self, k: int, *, step: int) -> torch.Tensor:
        """The channel rotation ``Q`` ``(k, k)`` of step ``step`` (float64, CPU)."""
        return haar_orthogonal(k, seed=(int(step) * 2_654_435_761 + _ROTATION_SALT) % 2**63)

    def _check(self, x: torch.Tensor) -> None:
        names = _GRID_NAMES.get(self.grid_rank, tuple(f"G{i}" for i in range(self.grid_rank)))
        layout = "(B, " + ", ".join(names) + ", K)"
        if x.dim() != self.grid_rank + 2:
            raise ValueError(
                f"{self.prior_name} expects tokens_proj of shape {layout}, got {tuple(x.shape)}"
            )
        if x.shape[-1] < len(self.families):
            raise ValueError(
                f"{self.prior_name} needs K >= {len(self.families)} channels (one "
                f"per stencil family), got tokens_proj of shape {tuple(x.shape)}"
            )
        need = tuple(max(f.min_grid[i] for f in self.families) for i in range(self.grid_rank))
        if any(g < m for g, m in zip(x.shape[1:-1], need)):
            want = " and ".join(f"{n} >= {m}" for n, m in zip(names, need))
            raise ValueError(
                f"{self.prior_name} needs a grid with {want} for its stencils, got "
                f"tokens_proj of shape {tuple(x.shape)}"
            )

    def increments(self, x: torch.Tensor, *, step: int) -> list[torch.Tensor]:
        """Pooled increments of each family, after the step's channel rotation.

        Args:
            x: Fields ``(B, *grid, K)``, any float dtype.
            step: Global step (seeds the rotation).

        Returns:
            One float32 tensor ``(B, n_f)`` per family: all positions and channels of family
            ``f`` of field ``b`` in row ``b``.
        """
        self._check(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            if self.rotate:
                q = self.rotation(x.shape[-1], step=step).to(device=x.device, dtype=x.dtype)
                x = x @ q
            n_fam = len(self.families)
            return [
                fam.stencil(x[..., f::n_fam]).reshape(x.shape[0], -1)
                for f, fam in enumerate(self.families)
            ]

    def statistics(self, x: torch.Tensor, *, step: int) -> torch.Tensor:
        """``EP_b`` of every local field and family (no cross-process reduction).

        Args:
            x: Fields ``(B, *grid, K)``.
            step: Global step.

        Returns:
            float32 ``(F, B)``.
        """
        stats = []
        for f, z in enumerate(self.increments(x, step=step)):
            ep = epps_pulley(z, self.nodes, self.weights, self.phi[f])
            stats.append(ep * z.shape[1] if self.scale_by_n else ep)
        return torch.stack(stats)

    def forward(self, x: torch.Tensor, *, step: int) -> torch.Tensor:
        """The loss: mean over families of the global-batch mean of ``EP_b``.

        The per-family sums over the local batch are added across processes with an
        autograd-aware all-reduce and divided by the global number of fields, so every process
        returns the same value, and after DDP's ``1 / W`` gradient averaging the gradient is
        that of one process holding the whole batch.

        Args:
            x: ``tokens_proj`` ``(B, H', W', K)`` (2D) or ``(B, T', H', W', K)`` (3D), any float
                dtype (computed in float32).
            step: Global optimisation step (seeds the rotation).

        Returns:
            Scalar float32.
        """
        per_field = self.statistics(x, step=step)  # (F, B)
        # One all-reduce for the per-family sums and the number of fields, so uneven local
        # batches still give the global mean (equal batches: B * world_size).
        count = per_field.new_full((1,), float(per_field.shape[1]))
        reduced = all_reduce_sum(torch.cat((per_field.sum(1), count)))
        sums, n_global = reduced[:-1], reduced[-1]
        return (sums / n_global).mean()

    def extra_repr(self) -> str:
        fams = ", ".join(f"{f.name}(A={f.cell_area:g})" for f in self.families)
        return (
            f"families=[{fams}], rotate={self.rotate}, scale_by_n={self.scale_by_n}, "
            f"u_max={self.u_max:.6g}, c={self.c:.6g}, nodes={self.nodes.numel()}"
        )
