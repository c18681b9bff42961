"""Golden values of the Lévy-sheet priors (docs/method.md, Lévy-sheet priors), derived
independently.

Every expected value here is computed in the test from the formulas, with NumPy/SciPy only
(closed forms, Brent's method, Gauss-Laguerre, explicit loops); the package's helpers are never
used to compute an expectation.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from levy_references import (
    ref_axis_2d,
    ref_axis_3d,
    ref_diagonal_2d,
    ref_diagonal_time_3d,
    ref_ep,
    ref_log_cf,
    ref_quadrature,
)

from levyjepa.core.registry import Registry
from levyjepa.priors.epps_pulley import epps_pulley
from levyjepa.priors.jump_diffusion_sheets import LevySheet2D, LevySheet3D
from levyjepa.priors.jump_laws import (
    LaplaceJumps,
)
from levyjepa.priors.levy_cf import LevyLogCF, laguerre_quadrature
from levyjepa.priors.levy_sheet import LevySheetPrior
from levyjepa.priors.stencils import families_2d

# ---------------------------------------------------------------- quadrature constants


def test_quadrature_constants_of_the_seed_setting() -> None:
    """alpha=1, sigma=0.125, lam=2: u_max, c, nodes and weights (independent and the documented
    ones)."""
    sigma, lam, alpha = 0.125, 2.0, 1.0
    u_max, c, nodes, weights = ref_quadrature(
        lambda u: ref_log_cf(u, sigma, lam, "laplace", alpha=alpha)
    )
    # docs/method.md, Lévy-sheet prior, to the quoted precision.
    assert u_max == pytest.approx(16.0310, abs=5e-5)
    assert c == pytest.approx(0.623792, abs=5e-7)
    np.testing.assert_allclose(nodes[:3], [0.132477, 0.699192, 1.723613], atol=5e-7)
    np.testing.assert_allclose(weights[:3], [0.313137, 0.513593, 0.428556], atol=5e-7)
    # The package, float64 ...
    quad = laguerre_quadrature(LevyLogCF(sigma=sigma, lam=lam, law=LaplaceJumps(alpha=alpha)))
    assert quad.u_max == pytest.approx(u_max, rel=1e-12)
    assert quad.c == pytest.approx(c, rel=1e-12)
    np.testing.assert_allclose(quad.nodes, nodes, rtol=1e-12)
    np.testing.assert_allclose(quad.weights, weights, rtol=1e-12)
    # ... and the prior's float32 buffers, with phi_A = exp(A log phi_1) per family.
    prior = LevySheet2D(sigma=sigma, lam=lam, alpha=alpha)
    assert prior.nodes.dtype == torch.float32 and prior.nodes.shape == (17,)
    np.testing.assert_allclose(prior.nodes.numpy(), nodes, rtol=1e-6)
    np.testing.assert_allclose(prior.weights.numpy(), weights, rtol=1e-6)
    log_phi = ref_log_cf(nodes, sigma, lam, "laplace", alpha=alpha)
    np.testing.assert_allclose(
        prior.phi.numpy(), np.exp([log_phi, 2 * log_phi]), rtol=1e-6, atol=1e-30
    )
    assert not prior.state_dict()  # constants are not checkpointed


@pytest.mark.parametrize(
    ("jumps", "params", "time_scale"),
    [
        ("variance_gamma", {"shape": 0.7, "rate": 1.3}, 1.0),
        ("student_t", {"nu": 4.0}, 1.0),
        ("laplace", {"alpha": 2.0}, 0.5),
    ],
)
def test_quadrature_and_phi_of_other_laws(jumps: str, params: dict, time_scale: float) -> None:
    sigma, lam = 0.2, 1.5
    u_max, c, nodes, weights = ref_quadrature(lambda u: ref_log_cf(u, sigma, lam, jumps, **params))
    prior = LevySheet3D(jumps=jumps, sigma=sigma, lam=lam, time_scale=time_scale, **params)
    assert prior.u_max == pytest.approx(u_max, rel=1e-10)
    np.testing.assert_allclose(prior.nodes.numpy(), nodes, rtol=1e-6)
    np.testing.assert_allclose(prior.weights.numpy(), weights, rtol=1e-6)
    log_phi = ref_log_cf(nodes, sigma, lam, jumps, **params)
    expected = np.exp([time_scale * log_phi, 2 * time_scale * log_phi])
    np.testing.assert_allclose(prior.phi.numpy(), expected, rtol=1e-6, atol=1e-30)


def test_u_max_needs_the_level_to_be_reachable() -> None:
    """A pure-jump law with lam < 4 plateaus above -4: a clear error, not a hang."""

    def plateau(u: np.ndarray) -> np.ndarray:
        return 3.0 * (1.0 / (1.0 + np.square(u)) - 1.0)

    with pytest.raises(ValueError, match="never reaches -4"):
        laguerre_quadrature(plateau)


# ---------------------------------------------------------------- forward values


def ref_prior_2d(x: np.ndarray, phi_1: np.ndarray, u: np.ndarray, w: np.ndarray, scale_n=False):
    """within = 0.5 (mean_b EP_b[axis: channels 0,2,..] + mean_b EP_b[diagonal: 1,3,..])."""
    b = x.shape[0]
    z0 = ref_axis_2d(x[..., 0::2]).reshape(b, -1)
    z1 = ref_diagonal_2d(x[..., 1::2]).reshape(b, -1)
    e0 = ref_ep(z0, u, w, phi_1) * (z0.shape[1] if scale_n else 1)
    e1 = ref_ep(z1, u, w, phi_1**2) * (z1.shape[1] if scale_n else 1)
    return 0.5 * (e0.mean() + e1.mean())


def ref_prior_3d(x: np.ndarray, phi_1: np.ndarray, u: np.ndarray, w: np.ndarray, ts: float):
    b = x.shape[0]
    z0 = ref_axis_3d(x[..., 0::2]).reshape(b, -1)
    z1 = ref_diagonal_time_3d(x[..., 1::2]).reshape(b, -1)
    return 0.5 * (ref_ep(z0, u, w, phi_1**ts).mean() + ref_ep(z1, u, w, phi_1 ** (2 * ts)).mean())


def fixed_field(shape: tuple[int, ...], seed: int, scale: float = 0.6) -> np.ndarray:
    """A skewed, heavy-ish field (so both CF parts matter), float32-representable."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale
    return (x + 0.2 * x**2 + 0.05 * rng.standard_t(3, size=shape)).astype(np.float32)


@pytest.mark.parametrize(
    ("jumps", "params", "scale_by_n"),
    [
        ("laplace", {"alpha": 1.0}, False),
        ("laplace", {"alpha": 1.0}, True),
        ("variance_gamma", {"shape": 2.0, "rate": 3.0}, False),
        ("student_t", {"nu": 3.0}, False),
    ],
)
def test_levy2d_forward_matches_numpy(jumps: str, params: dict, scale_by_n: bool) -> None:
    sigma, lam = 0.125, 2.0
    _, _, u, w = ref_quadrature(lambda v: ref_log_cf(v, sigma, lam, jumps, **params))
    phi_1 = np.exp(ref_log_cf(u, sigma, lam, jumps, **params))
    x = fixed_field((3, 6, 7, 5), seed=0)
    expected = ref_prior_2d(x.astype(np.float64), phi_1, u, w, scale_n=scale_by_n)
    prior = LevySheet2D(
        jumps=jumps, sigma=sigma, lam=lam, rotate=False, scale_by_n=scale_by_n, **params
    )
    got = prior(torch.from_numpy(x), step=0)
    assert got.dtype == torch.float32 and got.dim() == 0
    assert got.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("time_scale", [1.0, 0.7])
def test_levy3d_forward_matches_numpy(time_scale: float) -> None:
    sigma, lam = 0.125, 1.0
    _, _, u, w = ref_quadrature(lambda v: ref_log_cf(v, sigma, lam, "laplace", alpha=1.0))
    phi_1 = np.exp(ref_log_cf(u, sigma, lam, "laplace", alpha=1.0))
    x = fixed_field((2, 3, 5, 4, 4), seed=1)
    expected = ref_prior_3d(x.astype(np.float64), phi_1, u, w, time_scale)
    prior = LevySheet3D(sigma=sigma, lam=lam, rotate=False, time_scale=time_scale)
    assert prior(torch.from_numpy(x), step=0).item() == pytest.approx(expected, rel=1e-5)


def test_constant_field_gives_the_closed_form() -> None:
    """All increments 0: mean cos = 1, mean sin = 0, so EP = 2 sum w (1 - phi_A)^2."""
    prior = LevySheet2D(rotate=True)
    _, _, u, w = ref_quadrature(lambda v: ref_log_cf(v, 0.125, 2.0, "laplace", alpha=1.0))
    phi_1 = np.exp(ref_log_cf(u, 0.125, 2.0, "laplace", alpha=1.0))
    expected = 0.5 * (2 * (w * (1 - phi_1) ** 2).sum() + 2 * (w * (1 - phi_1**2) ** 2).sum())
    got = prior(torch.full((2, 5, 5, 4), 3.0), step=7).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_epps_pulley_matches_numpy_and_spec_reference_values() -> None:
    """EP against the formula, and the documented magnitudes: z ~ N(0,1), 3 rows of 200, A=1:
    about 0.07-0.10; z ~ 0.1 N(0,1), A=2: about 1.85."""
    _, _, u, w = ref_quadrature(lambda v: ref_log_cf(v, 0.125, 2.0, "laplace", alpha=1.0))
    phi_1 = np.exp(ref_log_cf(u, 0.125, 2.0, "laplace", alpha=1.0))
    t = {k: torch.from_numpy(v).float() for k, v in (("u", u), ("w", w), ("p1", phi_1))}
    rng = np.random.default_rng(3)
    z = rng.standard_normal((3, 200))
    ep1 = epps_pulley(torch.from_numpy(z), t["u"], t["w"], t["p1"])
    assert ep1.dtype == torch.float32 and ep1.shape == (3,)
    np.testing.assert_allclose(ep1.numpy(), ref_ep(z, u, w, phi_1), rtol=1e-5)
    assert 0.06 <= ep1.mean().item() <= 0.12
    ep2 = epps_pulley(torch.from_numpy(0.1 * z), t["u"], t["w"], t["p1"] ** 2)
    np.testing.assert_allclose(ep2.numpy(), ref_ep(0.1 * z, u, w, phi_1**2), rtol=1e-5)
    assert ep2.mean().item() == pytest.approx(1.85, abs=0.03)


# ---------------------------------------------------------------- extensibility


def stable_log_cf(u: np.ndarray, *, a: float, scale: float) -> np.ndarray:
    return -np.power(scale * np.abs(u), a)


def test_a_plugin_prior_is_a_characteristic_function_plus_stencils() -> None:
    """The module docstring's example: a symmetric alpha-stable sheet supplies only log phi_1."""
    registry = Registry("prior")

    @registry.register("stable2d")
    class Stable2D(LevySheetPrior):
        prior_name = "stable2d"

        def __init__(self, *, a: float = 1.5, scale: float = 0.2, rotate: bool = True) -> None:
            if not 0.0 < a <= 2.0:
                raise ValueError(f"stable2d: a must be in (0, 2], got {a}")
            super().__init__(
                log_cf=functools.partial(stable_log_cf, a=a, scale=scale),
                families=families_2d(),
                rotate=rotate,
            )

    prior = registry.build({"name": "stable2d", "a": 1.2, "scale": 0.3, "rotate": False})
    # log phi_1(u_max) = -4  <=>  u_max = 4^(1/a) / scale.
    assert prior.u_max == pytest.approx(4 ** (1 / 1.2) / 0.3, rel=1e-10)
    _, _, u, w = ref_quadrature(lambda v: -((0.3 * np.abs(v)) ** 1.2))
    np.testing.assert_allclose(
        prior.phi.numpy(),
        np.exp([-((0.3 * u) ** 1.2), -2 * (0.3 * u) ** 1.2]),
        rtol=1e-6,
    )
    x = fixed_field((2, 5, 5, 2), seed=4)
    z0 = ref_axis_2d(x[..., 0::2].astype(np.float64)).reshape(2, -1)
    z1 = ref_diagonal_2d(x[..., 1::2].astype(np.float64)).reshape(2, -1)
    phi = np.exp(-((0.3 * u) ** 1.2))
    expected = 0.5 * (ref_ep(z0, u, w, phi).mean() + ref_ep(z1, u, w, phi**2).mean())
    assert prior(torch.from_numpy(x), step=0).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(Exception, match="a must be in"):
        registry.build({"name": "stable2d", "a": 3.0})
