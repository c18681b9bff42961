"""Finite-difference stencils that turn a sheet into its cell increments (docs/method.md,
Lévy-sheet priors).

A Lévy sheet ``G(x, y) = Z([0, x] x [0, y])`` is the cumulative measure of i.i.d. cell
increments; the mixed difference over a cell recovers that cell's increment. Fields are
channels-last, ``(B, H, W, C)`` in 2D and ``(B, T, H, W, C)`` in 2D + time; stencils keep the
valid positions only and return ``(B, positions..., C)``. The space axes are always the
third- and second-to-last (``...,  H, W, C``), so the spatial stencils also work per time step.

- :func:`axis_2d` (cell area 1): ``G[i,j] - G[i,j-1] - G[i-1,j] + G[i-1,j-1]``,
  ``(B, H-1, W-1, C)``.
- :func:`diagonal_2d` (45 degrees, cell area 2): ``G[i-1,j] + G[i+1,j] - G[i,j-1] - G[i,j+1]``,
  ``(B, H-2, W-2, C)``: the mixed difference in the rotated coordinates ``s = i + j``,
  ``t = i - j`` over the diamond with those four corners.
- :func:`axis_3d` (cell volume ``time_scale``): the ``2x2x2`` third difference
  ``sum_{a,b,c in {0,1}} (-1)^(a+b+c) G[t-c, i-a, j-b]``, ``(B, T-1, H-1, W-1, C)``.
- :func:`diagonal_time_3d` (cell volume ``2 * time_scale``): the 45-degree spatial stencil of
  the first difference in time, ``(B, T-1, H-2, W-2, C)``.

:func:`families_2d` and :func:`families_3d` pair each stencil with its cell size, in the order
in which channels are assigned to them (channel ``c`` goes to family ``c % len(families)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

__all__ = [
    "StencilFamily",
    "axis_2d",
    "axis_3d",
    "diagonal_2d",
    "diagonal_time_3d",
    "families_2d",
    "families_3d",
]


def axis_2d(g: torch.Tensor) -> torch.Tensor:
    """Axis-aligned second difference over unit cells, ``(..., H, W, C) -> (..., H-1, W-1, C)``."""
    return g[..., 1:, 1:, :] - g[..., 1:, :-1, :] - g[..., :-1, 1:, :] + g[..., :-1, :-1, :]


def diagonal_2d(g: torch.Tensor) -> torch.Tensor:
    """45-degree stencil over diamonds of area 2, ``(..., H, W, C) -> (..., H-2, W-2, C)``."""
    # Position (i, j) of the output is the diamond centred on G[i+1, j+1].
    return (
        g[..., :-2, 1:-1, :]  # G[i-1, j]
        + g[..., 2:, 1:-1, :]  # G[i+1, j]
        - g[..., 1:-1, :-2, :]  # G[i, j-1]
        - g[..., 1:-1, 2:, :]  # G[i, j+1]
    )


def _time_difference(g: torch.Tensor) -> torch.Tensor:
    """First difference along time, ``(B, T, H, W, C) -> (B, T-1, H, W, C)``."""
    return g[:, 1:] - g[:, :-1]


def axis_3d(g: torch.Tensor) -> torch.Tensor:
    """``2x2x2`` third difference, ``(B, T, H, W, C) -> (B, T-1, H-1, W-1, C)``."""
    # The product of first differences along t, i and j expands to the signed sum over the
    # eight corners of the cell.
    return axis_2d(_time_difference(g))


def diagonal_time_3d(g: torch.Tensor) -> torch.Tensor:
    """45-degree stencil in space x first difference in time, ``-> (B, T-1, H-2, W-2, C)``."""
    return diagonal_2d(_time_difference(g))


class StencilFamily(NamedTuple):
    """One orientation family of increments.

    Attributes:
        name: Short name (``axis``, ``diagonal``).
        stencil: Field ``(B, *grid, C)`` to increments ``(B, *positions, C)``.
        cell_area: Area (2D) or volume (3D) of the cell an increment covers; the increment's
            log characteristic function is ``cell_area * log phi_1``.
        min_grid: Smallest grid size per grid axis with at least one valid position.
    """

    name: str
    stencil: Callable[[torch.Tensor], torch.Tensor]
    cell_area: float
    min_grid: tuple[int, ...]


def families_2d() -> tuple[StencilFamily, ...]:
    """The two 2D families: axis-aligned (area 1) and 45-degree (area 2)."""
    return (
        StencilFamily("axis", axis_2d, 1.0, (2, 2)),
        StencilFamily("diagonal", diagonal_2d, 2.0, (3, 3)),
    )


def families_3d(time_scale: float = 1.0) -> tuple[StencilFamily, ...]:
    """The two 2D + time families: ``2x2x2`` cells and 45-degree x time cells.

    Args:
        time_scale: Length of one time step in units of one spatial step (a cell's volume is
            ``time_scale`` times its spatial area).
    """
    if not time_scale > 0:
        raise ValueError(f"time_scale must be > 0, got {time_scale}")
    return (
        StencilFamily("axis", axis_3d, 1.0 * time_scale, (2, 2, 2)),
        StencilFamily("diagonal", diagonal_time_3d, 2.0 * time_scale, (2, 3, 3)),
    )
