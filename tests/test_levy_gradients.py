"""Gradients, dtypes, rotation and input/constructor validation of ``levy2d`` and ``levy3d``."""

from __future__ import annotations

import pytest
import torch

from levyjepa import PRIORS
from levyjepa.core.errors import ConfigError
from levyjepa.priors.cf_diagnostics import cf_diagnostics
from levyjepa.priors.jump_diffusion_sheets import LevySheet2D, LevySheet3D
from levyjepa.priors.levy_sheet import haar_orthogonal
from levyjepa.priors.sheet_sampler import sample_levy_sheet

SHAPES = {"levy2d": (4, 6, 6, 8), "levy3d": (2, 3, 5, 5, 6)}


def field(name: str, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(SHAPES[name], generator=gen)
    return 0.8 * x + 0.2 * x.square()


@pytest.mark.parametrize("name", ["levy2d", "levy3d"])
def test_float32_gradients_are_finite_and_non_zero(name: str) -> None:
    prior = PRIORS.build({"name": name})
    x = field(name).requires_grad_(True)
    loss = prior(x, step=1)
    assert loss.dtype == torch.float32 and loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # Every channel feeds the loss (the rotation mixes them across both families).
    assert (x.grad.abs().flatten(0, -2).sum(0) > 0).all()


@pytest.mark.parametrize("name", ["levy2d", "levy3d"])
def test_bf16_autocast_computes_in_float32(name: str) -> None:
    prior = PRIORS.build({"name": name})
    x = field(name).to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = prior(x, step=2)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert x.grad.dtype == torch.bfloat16
    assert torch.isfinite(x.grad.float()).all() and x.grad.float().abs().sum() > 0
    # Same value as float32 on the same (bf16-rounded) numbers: nothing ran in bf16.
    ref = prior(x.detach().float(), step=2)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)


def test_rotation_is_seeded_by_step_and_orthogonal() -> None:
    prior = LevySheet2D()
    x = field("levy2d")
    assert prior(x, step=3).item() == prior(x, step=3).item()
    assert prior(x, step=3).item() != prior(x, step=4).item()
    q = prior.rotation(8, step=3)
    torch.testing.assert_close(q.T @ q, torch.eye(8, dtype=torch.float64))
    torch.testing.assert_close(q, prior.rotation(8, step=3), rtol=0, atol=0)


def test_haar_orthogonal_moments() -> None:
    """For Haar Q in O(k): E[tr Q] = 0 and E[(tr Q)^2] = 1 (F. Mezzadri 2007; an unfixed QR
    sign convention gives E[tr Q] of about -0.8 here)."""
    traces = torch.stack([torch.trace(haar_orthogonal(4, seed=s)) for s in range(3000)])
    assert abs(traces.mean().item()) < 4 / 3000**0.5
    assert traces.square().mean().item() == pytest.approx(1.0, abs=0.12)


def test_rotation_does_not_change_the_law_of_isotropic_sheets() -> None:
    """Sheets with isotropic jumps: the statistic with and without rotation agree in mean."""
    x = sample_levy_sheet(
        (300, 8, 8), 8, sigma=0.125, lam=2.0, generator=torch.Generator().manual_seed(1)
    )
    a = LevySheet2D(rotate=True).statistics(x, step=9)
    b = LevySheet2D(rotate=False).statistics(x, step=9)
    torch.testing.assert_close(a.mean(1), b.mean(1), rtol=0.1, atol=0)


def test_cf_diagnostics_agree_with_the_statistic() -> None:
    prior = LevySheet3D(time_scale=0.5)
    x = field("levy3d")
    fams = cf_diagnostics(prior, x, step=4)
    assert [f.name for f in fams] == ["axis", "diagonal"]
    assert [f.cell_area for f in fams] == [0.5, 1.0]
    stats = prior.statistics(x, step=4)
    for f, fam in enumerate(fams):
        assert fam.cos_mean.shape == fam.sin_mean.shape == (2, 17)
        err = (fam.cos_mean - fam.phi).square() + fam.sin_mean.square()
        torch.testing.assert_close(2 * (err * fam.weights).sum(-1), stats[f])
        torch.testing.assert_close(fam.statistic, stats[f])
    assert fams[0].n_increments == 2 * 4 * 4 * 3  # (T-1)(H-1)(W-1) x 3 channels
    assert fams[1].n_increments == 2 * 3 * 3 * 3


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("name", "kwargs", "param"),
    [
        ("levy2d", {"sigma": 0.0}, "sigma"),
        ("levy2d", {"sigma": float("nan")}, "sigma"),
        ("levy2d", {"lam": -1.0}, "lam"),
        ("levy2d", {"alpha": 0.0}, "alpha"),
        ("levy2d", {"jumps": "gaussian"}, "jumps"),
        ("levy2d", {"jumps": "variance_gamma", "shape": 0.0}, "shape"),
        ("levy2d", {"jumps": "variance_gamma", "rate": -2.0}, "rate"),
        ("levy2d", {"jumps": "student_t", "nu": 0.0}, "nu"),
        ("levy2d", {"jumps": "laplace", "nu": 3.0}, "nu"),
        ("levy2d", {"jumps": "student_t", "shape": 1.0}, "shape"),
        ("levy2d", {"jumps": "student_t", "alpha": 2.0}, "alpha"),
        ("levy3d", {"time_scale": 0.0}, "time_scale"),
        ("levy3d", {"time_scale": float("inf")}, "time_scale"),
        ("levy3d", {"lam": 0.0}, "lam"),
    ],
)
def test_invalid_parameters_name_themselves(name: str, kwargs: dict, param: str) -> None:
    cls = LevySheet2D if name == "levy2d" else LevySheet3D
    with pytest.raises(ValueError, match=param) as err:
        cls(**kwargs)
    assert "\n" not in str(err.value)
    assert name in str(err.value)
    with pytest.raises(ConfigError, match=param):  # what a recipe user sees
        PRIORS.build({"name": name, **kwargs}, where="priors.within")


def test_unknown_jumps_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="laplace, variance_gamma, student_t"):
        LevySheet2D(jumps="cauchy")


def test_other_laws_build() -> None:
    for kwargs in (
        {"jumps": "variance_gamma", "shape": 2.0, "rate": 1.0},
        {"jumps": "student_t", "nu": 5.0},
        {"jumps": "student_t"},
    ):
        prior = PRIORS.build({"name": "levy2d", **kwargs})
        assert torch.isfinite(prior(field("levy2d"), step=0))


@pytest.mark.parametrize(
    ("name", "shape", "match"),
    [
        ("levy2d", (4, 6, 6), r"\(B, H', W', K\)"),
        ("levy2d", (2, 3, 6, 6, 4), r"\(B, H', W', K\)"),
        ("levy2d", (2, 6, 6, 1), "K >= 2"),
        ("levy2d", (2, 2, 6, 4), "H' >= 3 and W' >= 3"),
        ("levy2d", (2, 6, 2, 4), "H' >= 3 and W' >= 3"),
        ("levy3d", (2, 6, 6, 4), r"\(B, T', H', W', K\)"),
        ("levy3d", (2, 1, 6, 6, 4), "T' >= 2"),
        ("levy3d", (2, 3, 2, 6, 4), "H' >= 3"),
        ("levy3d", (2, 3, 6, 6, 1), "K >= 2"),
    ],
)
def test_forward_shape_errors(name: str, shape: tuple[int, ...], match: str) -> None:
    prior = PRIORS.build({"name": name})
    with pytest.raises(ValueError, match=match) as err:
        prior(torch.zeros(shape), step=0)
    assert str(tuple(shape)) in str(err.value) and "\n" not in str(err.value)


def test_smallest_valid_grids() -> None:
    assert torch.isfinite(LevySheet2D()(torch.randn(1, 3, 3, 2), step=0))
    assert torch.isfinite(LevySheet3D()(torch.randn(1, 2, 3, 3, 2), step=0))
