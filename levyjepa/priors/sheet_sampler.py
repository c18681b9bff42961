"""Sample Lévy sheets: fields whose stencil increments follow a Lévy prior's law.

docs/method.md, Lévy-sheet prior model ``Z = sigma * W + J`` on a grid. Each cell of size ``A``
(area in 2D,
volume in 2D + time) receives an independent increment in ``R^K``::

    sigma * sqrt(A) * xi  +  sum_{m <= N} sqrt(tau_m) * v_m,     N ~ Poisson(lam * A)

with ``xi, v_m ~ N(0, I_K)`` (one ``v`` per jump, shared by the ``K`` channels of that jump) and
``tau_m ~ rho``. Given ``N`` and the ``tau``, the jump sum is ``sqrt(sum tau) * g`` with
``g ~ N(0, I_K)``, which is how it is drawn. Projected on a unit direction the increment has
``log phi_A(u) = A (-sigma^2 u^2 / 2 + lam (M_rho(u) - 1))``.

The sheet is the cumulative sum of the cell increments along every grid axis, so a mixed
difference recovers cell increments:

- ``orientation="axis"``: cells are the grid's unit squares (unit cubes of volume
  ``time_scale`` in 3D); :func:`levyjepa.priors.stencils.axis_2d` / ``axis_3d`` return exactly
  the increments of the cells at positions ``>= 1`` along every axis.
- ``orientation="diagonal"``: the sheet lives on the 45-degree lattice ``s = i + j``,
  ``t = i - j``, whose unit cells are diamonds of area 1/2; the token at ``(i, j)`` reads it at
  ``(s, t)``. :func:`~levyjepa.priors.stencils.diagonal_2d` (``diagonal_time_3d``) then returns
  sums of ``2 x 2`` such cells, i.e. diamonds of area 2 (times ``time_scale`` in 3D), which
  overlap their four axis neighbours by one small cell.

No grid field is a sheet for both orientations (see :mod:`levyjepa.priors.levy_sheet`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional, Union

import torch

from levyjepa.priors.jump_laws import JumpLaw, make_jump_law

__all__ = ["sample_cell_increments", "sample_levy_sheet"]


def sample_cell_increments(
    size: Sequence[int],
    channels: int,
    *,
    area: float,
    sigma: float,
    lam: float,
    law: JumpLaw,
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """I.i.d. increments of cells of size ``area``.

    Args:
        size: Leading shape, e.g. ``(B, H, W)``.
        channels: ``K``.
        area: Cell area (volume) ``A``.
        sigma: Brownian scale.
        lam: Jump intensity per unit cell.
        law: Jump law of ``tau``.
        generator: Source of randomness (``None``: torch's global generator).
        device: Device (default: the generator's, else CPU).

    Returns:
        float64 ``(*size, K)``.
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    kw = {"generator": generator, "device": device, "dtype": torch.float64}
    n_cells = math.prod(size)
    brownian = (sigma * math.sqrt(area)) * torch.randn(n_cells, channels, **kw)
    counts = torch.poisson(
        torch.full((n_cells,), lam * area, device=device, dtype=torch.float64), generator=generator
    ).long()
    tau = law.sample_tau(int(counts.sum()), generator=generator, device=device)
    cell = torch.repeat_interleave(torch.arange(n_cells, device=device), counts)
    tau_sum = torch.zeros(n_cells, device=device, dtype=torch.float64).index_add_(0, cell, tau)
    jumps = tau_sum.sqrt().unsqueeze(1) * torch.randn(n_cells, channels, **kw)
    return (brownian + jumps).reshape(*size, channels)


def _cumsum_grid(cells: torch.Tensor) -> torch.Tensor:
    """Cumulative sums along every grid axis of ``(B, *grid, K)``."""
    for axis in range(1, cells.dim() - 1):
        cells = cells.cumsum(axis)
    return cells


def sample_levy_sheet(
    size: Sequence[int],
    channels: int,
    *,
    sigma: float,
    lam: float,
    jumps: Union[str, JumpLaw] = "laplace",
    alpha: float = 1.0,
    shape: float = 1.0,
    rate: float = 0.5,
    nu: float = 3.0,
    time_scale: float = 1.0,
    orientation: str = "axis",
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Draw Lévy-sheet fields ``(B, H, W, K)`` or ``(B, T, H, W, K)``.

    Args:
        size: ``(B, H, W)`` (image grid) or ``(B, T, H, W)`` (video grid).
        channels: ``K``.
        sigma: Brownian scale.
        lam: Jump intensity per unit cell.
        jumps: Jump law name (``laplace``, ``variance_gamma``, ``student_t``) or a
            :class:`~levyjepa.priors.jump_laws.JumpLaw` (then ``alpha``, ``shape``, ``rate``,
            ``nu`` are ignored).
        alpha: Laplace rate.
        shape: Variance-gamma shape.
        rate: Variance-gamma rate.
        nu: Student-t degrees of freedom.
        time_scale: Length of a time step in units of a space step (3D only).
        orientation: ``axis`` (cells are grid squares / cubes) or ``diagonal`` (cells are
            45-degree diamonds in space); see the module docstring.
        generator: Source of randomness (``None``: torch's global generator).
        device: Device (default: the generator's, else CPU).
        dtype: dtype of the result (sampling is float64).

    Returns:
        ``(*size, K)`` fields.
    """
    size = tuple(int(s) for s in size)
    if len(size) not in (3, 4) or min(size) < 1:
        raise ValueError(f"size must be (B, H, W) or (B, T, H, W) with sizes >= 1, got {size}")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    for name, value in (("sigma", sigma), ("lam", lam), ("time_scale", time_scale)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if len(size) == 3 and time_scale != 1.0:
        raise ValueError("time_scale applies to (B, T, H, W) sheets only")
    if orientation not in ("axis", "diagonal"):
        raise ValueError(f"orientation must be 'axis' or 'diagonal', got {orientation!r}")
    law = (
        jumps
        if isinstance(jumps, JumpLaw)
        else make_jump_law(jumps, alpha=alpha, shape=shape, rate=rate, nu=nu)
    )
    cell_time = time_scale if len(size) == 4 else 1.0
    draw = {
        "channels": channels,
        "sigma": sigma,
        "lam": lam,
        "law": law,
        "generator": generator,
        "device": device,
    }
    if orientation == "axis":
        cells = sample_cell_increments(size, area=cell_time, **draw)
        return _cumsum_grid(cells).to(dtype)
    # 45-degree lattice: s = i + j in [0, H+W-2], t = i - j + W - 1 in [0, H+W-2]; its unit
    # cells are diamonds of area 1/2.
    h, w = size[-2:]
    n_rot = h + w - 1
    cells = sample_cell_increments((*size[:-2], n_rot, n_rot), area=0.5 * cell_time, **draw)
    rotated = _cumsum_grid(cells)  # (B, [T,] S, S, K)
    i = torch.arange(h, device=rotated.device).view(h, 1)
    j = torch.arange(w, device=rotated.device).view(1, w)
    return rotated[..., i + j, i - j + (w - 1), :].to(dtype)
