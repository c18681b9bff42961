"""Calibration and power of the Lévy-sheet statistic, by Monte Carlo with fixed seeds.

Fields come from :func:`sample_levy_sheet`; each orientation family is checked on the sheet it
describes (``orientation="axis"`` for the axis-aligned / ``2x2x2`` family, ``"diagonal"`` for
the 45-degree family): no field is a sheet for both, see
:func:`test_an_axis_sheet_is_not_a_sample_of_the_diagonal_family`. Monte Carlo sizes are
moderate (each test well under a second on one core).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from levyjepa.priors.epps_pulley import epps_pulley
from levyjepa.priors.jump_diffusion_sheets import LevySheet2D, LevySheet3D
from levyjepa.priors.sheet_sampler import sample_levy_sheet

SIGMA, LAM = 0.125, 2.0
MEAN_TAU = 2.0  # Laplace jumps with alpha = 1: tau ~ Exp(rate 1/2)
VAR_1 = SIGMA**2 + LAM * MEAN_TAU  # variance of a unit cell's projected increment


def consts(prior) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, phi_axis, phi_diagonal) of a prior, float64."""
    w = prior.weights.double().numpy()
    return w, prior.phi[0].double().numpy(), prior.phi[1].double().numpy()


def zscore(samples: np.ndarray, expected: float) -> float:
    return (samples.mean() - expected) / (samples.std(ddof=1) / math.sqrt(len(samples)))


# ---------------------------------------------------------------- (a) exact null expectation


@pytest.mark.parametrize("grid", [(10, 10), (4, 6, 6)], ids=["2d", "3d"])
def test_axis_family_null_expectation_is_exact(grid: tuple[int, ...]) -> None:
    """Axis family on axis sheets: its n increments are i.i.d. with CF phi (disjoint cells), so
    E[EP] = (2/n) sum_i w_i (1 - phi(u_i)^2). One channel per family (K = 2), rotate=False;
    z-score of the Monte Carlo mean against this value."""
    ts = 0.5 if len(grid) == 3 else 1.0
    prior = (
        LevySheet3D(rotate=False, time_scale=ts) if len(grid) == 3 else LevySheet2D(rotate=False)
    )
    w, phi, _ = consts(prior)
    reps = 2000
    x = sample_levy_sheet(
        (reps, *grid),
        2,
        sigma=SIGMA,
        lam=LAM,
        time_scale=ts,
        generator=torch.Generator().manual_seed(10),
    )
    ep = prior.statistics(x, step=0)[0].double().numpy()
    n = math.prod(g - 1 for g in grid)
    expected = 2.0 / n * float((w * (1 - phi**2)).sum())
    assert abs(zscore(ep, expected)) < 4, (ep.mean(), expected)


@pytest.mark.parametrize("grid", [(10, 10), (4, 6, 6)], ids=["2d", "3d"])
def test_diagonal_family_null_expectation_with_overlapping_diamonds(
    grid: tuple[int, ...],
) -> None:
    """45-degree family on 45-degree sheets. Its increments are NOT independent: the diamond at
    (i, j) shares one lattice cell (area 1/2 of its 2) with each of its four axis neighbours
    (i +- 1, j), (i, j +- 1), and none with the others. For stationary z_p with CF phi_2:

        E[EP] = 2 sum_i w_i (Var mean cos + Var mean sin)
              = (2/n^2) sum_i w_i sum_{p,q} (E cos(u (z_p - z_q)) - phi_2^2)

    and z_p - z_q is the sum over the symmetric difference of the two diamonds (the shared cell
    cancels): CF phi_1^4 = phi_2^2 for disjoint diamonds (no contribution), phi_1^3 for
    neighbours, 1 for p = q. So E[EP] = (2/n^2) sum_i w_i (n (1 - phi_1^4) + N (phi_1^3 -
    phi_1^4)), N the number of ordered neighbour pairs (in 3D per time step, cells of
    different time steps being disjoint; phi_1 is then the CF of a half-diamond x time cell
    pair, i.e. exp(time_scale log phi_unit)). Checked with a z-score, and the i.i.d. formula
    is shown to be wrong here."""
    ts = 0.5 if len(grid) == 3 else 1.0
    prior = (
        LevySheet3D(rotate=False, time_scale=ts) if len(grid) == 3 else LevySheet2D(rotate=False)
    )
    w, phi_axis, phi_diag = consts(prior)
    reps = 2000
    x = sample_levy_sheet(
        (reps, *grid),
        2,
        sigma=SIGMA,
        lam=LAM,
        time_scale=ts,
        orientation="diagonal",
        generator=torch.Generator().manual_seed(11),
    )
    ep = prior.statistics(x, step=0)[1].double().numpy()
    h, wd = grid[-2:]
    steps = grid[0] - 1 if len(grid) == 3 else 1
    n = steps * (h - 2) * (wd - 2)
    pairs = steps * 2 * ((h - 3) * (wd - 2) + (h - 2) * (wd - 3))
    phi_1 = phi_axis  # CF of one unit (x time_scale) cell: phi_diag = phi_1^2
    np.testing.assert_allclose(phi_diag, phi_1**2, rtol=1e-5, atol=1e-30)
    expected = 2.0 / n**2 * float((w * (n * (1 - phi_1**4) + pairs * (phi_1**3 - phi_1**4))).sum())
    assert abs(zscore(ep, expected)) < 4, (ep.mean(), expected)
    iid = 2.0 / n * float((w * (1 - phi_diag**2)).sum())
    assert abs(zscore(ep, iid)) > 6, "the i.i.d. formula should not fit overlapping diamonds"


def test_an_axis_sheet_is_not_a_sample_of_the_diagonal_family() -> None:
    """A property of the model (docs/method.md, Lévy-sheet prior), documented: on a sheet made of
    axis-aligned
    cells the 45-degree stencil sums strips of cells reaching the grid's edge, not a diamond,
    so its statistic is far above the diagonal family's null level (and grows with the grid)."""
    prior = LevySheet2D(rotate=False)
    gen = torch.Generator().manual_seed(12)
    means = []
    for size in (16, 32):
        axis_sheet = sample_levy_sheet((200, size, size), 2, sigma=SIGMA, lam=LAM, generator=gen)
        diag_sheet = sample_levy_sheet(
            (200, size, size), 2, sigma=SIGMA, lam=LAM, orientation="diagonal", generator=gen
        )
        on_axis = prior.statistics(axis_sheet, step=0)[1].mean().item()
        on_diag = prior.statistics(diag_sheet, step=0)[1].mean().item()
        assert on_axis > 10 * on_diag, (size, on_axis, on_diag)
        means.append(on_axis)
    assert means[1] > means[0]


# ---------------------------------------------------------------- (b) shared jumps, K = 16

K16 = 16


def direct_cells(rng: np.random.Generator, size: tuple[int, ...], area: float, shared: bool):
    """I.i.d. cell increments drawn with NumPy: sigma sqrt(A) xi + sqrt(sum of N taus) g,
    N ~ Poisson(lam A), the sum of N Exp(rate 1/2) being Gamma(N, scale 2); ``shared``: one
    (N, taus) per cell for all channels, else one per channel."""
    csize = size if shared else (*size, K16)
    brownian = SIGMA * math.sqrt(area) * rng.standard_normal((*size, K16))
    count = rng.poisson(LAM * area, size=csize)
    tau_sum = np.where(count > 0, rng.gamma(np.maximum(count, 1), 2.0), 0.0)
    scale = np.sqrt(tau_sum)[..., None] if shared else np.sqrt(tau_sum)
    return brownian + scale * rng.standard_normal((*size, K16))


def test_multichannel_sheets_match_directly_drawn_increments() -> None:
    """K = 16 channels sharing each jump, rotate=True (the jumps are isotropic, so rotating
    channels keeps their law). Per family, the distribution of EP_b over fields from the sheet
    sampler (through stencils and rotation) equals that over fields made of directly drawn
    increments (NumPy, no cumsum, no stencil): two-sample KS, p > 0.001. Axis family: i.i.d.
    unit cells; 45-degree family: sums of 2x2 diamond cells of area 1/2 around each interior
    token, drawn on the 45-degree lattice. Sanity: jumps drawn independently per channel give
    a clearly different distribution (so the test sees the channel dependence)."""
    prior = LevySheet2D(rotate=True)
    reps, h, w = 300, 8, 8
    gen = torch.Generator().manual_seed(13)
    rng = np.random.default_rng(13)
    t = {"nodes": prior.nodes, "weights": prior.weights}

    axis_sheet = sample_levy_sheet((reps, h, w), K16, sigma=SIGMA, lam=LAM, generator=gen)
    ep_sheet = prior.statistics(axis_sheet, step=5)[0].numpy()
    cells = direct_cells(rng, (reps, h - 1, w - 1), 1.0, shared=True)
    z = torch.from_numpy(cells[..., 0::2].reshape(reps, -1))
    ep_direct = epps_pulley(z, t["nodes"], t["weights"], prior.phi[0]).numpy()
    assert stats.ks_2samp(ep_sheet, ep_direct).pvalue > 1e-3

    independent = direct_cells(rng, (reps, h - 1, w - 1), 1.0, shared=False)
    z = torch.from_numpy(independent[..., 0::2].reshape(reps, -1))
    ep_indep = epps_pulley(z, t["nodes"], t["weights"], prior.phi[0]).numpy()
    assert stats.ks_2samp(ep_sheet, ep_indep).pvalue < 1e-6

    diag_sheet = sample_levy_sheet(
        (reps, h, w), K16, sigma=SIGMA, lam=LAM, orientation="diagonal", generator=gen
    )
    ep_sheet = prior.statistics(diag_sheet, step=5)[1].numpy()
    lattice = direct_cells(rng, (reps, h + w - 1, h + w - 1), 0.5, shared=True)
    i, j = np.meshgrid(np.arange(1, h - 1), np.arange(1, w - 1), indexing="ij")
    s, tt = i + j, i - j + w - 1
    diamonds = (
        lattice[:, s, tt]
        + lattice[:, s + 1, tt]
        + lattice[:, s, tt + 1]
        + lattice[:, s + 1, tt + 1]
    )
    z = torch.from_numpy(diamonds[..., 1::2].reshape(reps, -1))
    ep_direct = epps_pulley(z, t["nodes"], t["weights"], prior.phi[1]).numpy()
    assert stats.ks_2samp(ep_sheet, ep_direct).pvalue > 1e-3


# ---------------------------------------------------------------- (c) power


def power_fields(kind: str, family: int, size: tuple[int, ...], gen: torch.Generator):
    reps, h, w, k = size
    if kind == "white":
        # Every stencil combines 4 tokens with coefficients +-1: per-increment variance 4 s^2,
        # matched to the sheet's A * VAR_1.
        area = 1.0 if family == 0 else 2.0
        return torch.randn(size, generator=gen) * math.sqrt(area * VAR_1 / 4)
    if kind == "smooth":
        i = torch.arange(h).view(1, h, 1, 1).float()
        j = torch.arange(w).view(1, 1, w, 1).float()
        freq = 0.5 + torch.rand(reps, 1, 1, k, generator=gen)  # 0.5-1.5 periods per grid
        phase = 2 * math.pi * torch.rand(reps, 1, 1, k, generator=gen)
        return 3.0 * torch.sin(2 * math.pi * freq * (i + 0.7 * j) / h + phase)
    return (5.0 * torch.randn(reps, 1, 1, k, generator=gen)).expand(size)  # constant


@pytest.mark.parametrize("family", [0, 1], ids=["axis", "diagonal"])
def test_power_against_white_noise_smooth_and_constant_fields(family: int) -> None:
    """Null: sheets of the family's orientation (K = 8, shared jumps, rotate=False). The
    statistic on white noise of the same per-increment variance, on smooth sinusoidal fields
    and on constant fields has mean > 5x the null mean and min > the null's 0.99 quantile."""
    prior = LevySheet2D(rotate=False)
    size = (200, 24, 24, 8)
    gen = torch.Generator().manual_seed(14 + family)
    orientation = "axis" if family == 0 else "diagonal"
    sheets = sample_levy_sheet(
        size[:3], size[3], sigma=SIGMA, lam=LAM, orientation=orientation, generator=gen
    )
    null = prior.statistics(sheets, step=0)[family]
    q99, mean0 = null.quantile(0.99).item(), null.mean().item()
    for kind in ("white", "smooth", "constant"):
        alt = prior.statistics(power_fields(kind, family, size, gen), step=0)[family]
        assert alt.mean().item() > 5 * mean0, (kind, alt.mean().item(), mean0)
        assert alt.min().item() > q99, (kind, alt.min().item(), q99)
