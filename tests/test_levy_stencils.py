"""Stencils recover cell increments of sheets built by cumulative sums (docs/method.md, Lévy-sheet
priors).

Sheets are built here with NumPy from known i.i.d. increments; the axis-aligned 2D stencil and
the 3D ``2x2x2`` stencil must return exactly those increments, and the 45-degree stencils must
return sums of the diamond cells of a sheet built on the 45-degree lattice. The package's
sheet sampler is checked against the increments it drew (replaying its generator).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from levyjepa.priors.jump_laws import LaplaceJumps
from levyjepa.priors.sheet_sampler import sample_cell_increments, sample_levy_sheet
from levyjepa.priors.stencils import (
    axis_2d,
    axis_3d,
    diagonal_2d,
    diagonal_time_3d,
    families_2d,
    families_3d,
)


def t64(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)


def test_axis_2d_recovers_the_increments_of_a_cumsum_sheet() -> None:
    rng = np.random.default_rng(0)
    inc = rng.standard_normal((3, 6, 5, 4)) + rng.laplace(size=(3, 6, 5, 4))
    sheet = inc.cumsum(1).cumsum(2)
    out = axis_2d(t64(sheet))
    assert out.shape == (3, 5, 4, 4) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), inc[:, 1:, 1:], rtol=0, atol=1e-12)


def test_axis_3d_recovers_the_increments_of_a_cumsum_sheet() -> None:
    rng = np.random.default_rng(1)
    inc = rng.standard_normal((2, 4, 5, 6, 3))
    sheet = inc.cumsum(1).cumsum(2).cumsum(3)
    out = axis_3d(t64(sheet))
    assert out.shape == (2, 3, 4, 5, 3)
    np.testing.assert_allclose(out.numpy(), inc[:, 1:, 1:, 1:], rtol=0, atol=1e-12)


def rotated_sheet(cells: np.ndarray, h: int, w: int) -> np.ndarray:
    """A sheet on the lattice s = i + j, t = i - j + w - 1 read at the grid points (i, j).

    ``cells`` ``(B, S, S, C)`` with ``S = h + w - 1`` are the increments of the lattice's unit
    diamonds; the value at (s, t) is the sum of the cells (s' <= s, t' <= t).
    """
    lattice = cells.cumsum(-3).cumsum(-2)
    out = np.empty(cells.shape[:-3] + (h, w, cells.shape[-1]))
    for i in range(h):
        for j in range(w):
            out[..., i, j, :] = lattice[..., i + j, i - j + w - 1, :]
    return out


def diamond_sums(cells: np.ndarray, h: int, w: int) -> np.ndarray:
    """For each interior (i, j): the 2x2 lattice cells {s, s+1} x {t, t+1} around it."""
    out = np.empty(cells.shape[:-3] + (h - 2, w - 2, cells.shape[-1]))
    for i in range(1, h - 1):
        for j in range(1, w - 1):
            s, t = i + j, i - j + w - 1
            out[..., i - 1, j - 1, :] = cells[..., s : s + 2, t : t + 2, :].sum((-3, -2))
    return out


def test_diagonal_2d_returns_diamond_increments_of_a_rotated_sheet() -> None:
    rng = np.random.default_rng(2)
    h, w = 6, 5
    cells = rng.standard_normal((3, h + w - 1, h + w - 1, 2))
    out = diagonal_2d(t64(rotated_sheet(cells, h, w)))
    assert out.shape == (3, h - 2, w - 2, 2)
    np.testing.assert_allclose(out.numpy(), diamond_sums(cells, h, w), rtol=0, atol=1e-12)


def test_diagonal_time_3d_returns_diamond_x_time_increments() -> None:
    rng = np.random.default_rng(3)
    tt, h, w = 4, 5, 6
    cells = rng.standard_normal((2, tt, h + w - 1, h + w - 1, 3))
    sheet = rotated_sheet(cells, h, w).cumsum(1)  # cumulative in time as well
    out = diagonal_time_3d(t64(sheet))
    assert out.shape == (2, tt - 1, h - 2, w - 2, 3)
    np.testing.assert_allclose(out.numpy(), diamond_sums(cells, h, w)[:, 1:], atol=1e-12)


def test_diagonal_stencils_against_the_formula_on_arbitrary_fields() -> None:
    rng = np.random.default_rng(4)
    g = rng.standard_normal((2, 5, 6, 7, 3))
    ref2 = np.empty((2, 5, 4, 5, 3))
    for i in range(1, 5):
        for j in range(1, 6):
            ref2[:, :, i - 1, j - 1] = (
                g[:, :, i - 1, j] + g[:, :, i + 1, j] - g[:, :, i, j - 1] - g[:, :, i, j + 1]
            )
    # The spatial stencil acts on the last two grid axes, so it also works per time step.
    np.testing.assert_allclose(diagonal_2d(t64(g)).numpy(), ref2, atol=1e-12)
    np.testing.assert_allclose(diagonal_time_3d(t64(g)).numpy(), ref2[:, 1:] - ref2[:, :-1])


def test_families_cell_sizes() -> None:
    assert [(f.name, f.cell_area) for f in families_2d()] == [("axis", 1.0), ("diagonal", 2.0)]
    assert [(f.name, f.cell_area) for f in families_3d(0.5)] == [
        ("axis", 0.5),
        ("diagonal", 1.0),
    ]
    with pytest.raises(ValueError, match="time_scale"):
        families_3d(0.0)


@pytest.mark.parametrize("size", [(3, 5, 6), (2, 3, 4, 5)])
def test_sampler_axis_sheet_stencil_returns_the_drawn_increments(size: tuple[int, ...]) -> None:
    """Replaying the generator: the sheet is the cumulative sum of these cell increments."""
    law, area = LaplaceJumps(alpha=1.0), 0.5 if len(size) == 4 else 1.0
    cells = sample_cell_increments(
        size,
        3,
        area=area,
        sigma=0.125,
        lam=2.0,
        law=law,
        generator=torch.Generator().manual_seed(9),
    )
    sheet = sample_levy_sheet(
        size,
        3,
        sigma=0.125,
        lam=2.0,
        time_scale=area if len(size) == 4 else 1.0,
        generator=torch.Generator().manual_seed(9),
        dtype=torch.float64,
    )
    assert sheet.shape == (*size, 3) and sheet.dtype == torch.float64
    stencil = axis_3d if len(size) == 4 else axis_2d
    inner = cells[:, 1:, 1:, 1:] if len(size) == 4 else cells[:, 1:, 1:]
    torch.testing.assert_close(stencil(sheet), inner, rtol=0, atol=1e-12)


def test_sampler_diagonal_sheet_stencil_returns_diamond_sums() -> None:
    h, w = 5, 7
    cells = sample_cell_increments(
        (2, h + w - 1, h + w - 1),
        2,
        area=0.5,
        sigma=0.125,
        lam=2.0,
        law=LaplaceJumps(),
        generator=torch.Generator().manual_seed(5),
    )
    sheet = sample_levy_sheet(
        (2, h, w),
        2,
        sigma=0.125,
        lam=2.0,
        orientation="diagonal",
        generator=torch.Generator().manual_seed(5),
        dtype=torch.float64,
    )
    expected = diamond_sums(cells.numpy(), h, w)
    np.testing.assert_allclose(diagonal_2d(sheet).numpy(), expected, atol=1e-12)


def test_sampler_validation() -> None:
    for kwargs, match in (
        ({"sigma": 0.0}, "sigma"),
        ({"lam": -1.0}, "lam"),
        ({"time_scale": 2.0}, "time_scale"),
        ({"orientation": "rotated"}, "orientation"),
        ({"jumps": "cauchy"}, "laplace, variance_gamma, student_t"),
    ):
        args = {"sigma": 0.1, "lam": 1.0, **kwargs}
        with pytest.raises(ValueError, match=match):
            sample_levy_sheet((2, 4, 4), 2, **args)
    with pytest.raises(ValueError, match="size"):
        sample_levy_sheet((4, 4), 2, sigma=0.1, lam=1.0)
