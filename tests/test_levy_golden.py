"""Golden values of the Lévy-sheet priors (docs/method.md, Lévy-sheet priors), derived
independently.

Every expected value here is computed in the test from the formulas, with NumPy/SciPy only
(closed forms, Brent's method, Gauss-Laguerre, explicit loops); the package's helpers are never
used to compute an expectation.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from numpy.polynomial.laguerre import laggauss
from scipy import optimize, special

from levyjepa.priors.epps_pulley import epps_pulley
from levyjepa.priors.jump_laws import (
    LaplaceJumps,
    StudentTJumps,
    VarianceGammaJumps,
    make_jump_law,
)
from levyjepa.priors.levy_cf import LevyLogCF, laguerre_quadrature
from levyjepa.priors.levy_sheet import LevySheet2D, LevySheet3D, LevySheetPrior
from levyjepa.priors.stencils import families_2d
from levyjepa.registry import Registry

# ---------------------------------------------------------------- independent references


def ref_mixing(jumps: str, u: np.ndarray, **p: float) -> np.ndarray:
    """Closed forms of docs/method.md, Lévy-sheet prior table (direct, not in log space)."""
    u = np.abs(np.asarray(u, dtype=np.float64))
    if jumps == "laplace":
        return p["alpha"] ** 2 / (p["alpha"] ** 2 + u**2)
    if jumps == "variance_gamma":
        return (p["rate"] / (p["rate"] + u**2 / 2)) ** p["shape"]
    nu = p["nu"]
    x = math.sqrt(nu) * np.where(u == 0, 1.0, u)
    m = 2 * special.kv(nu / 2, x) / special.gamma(nu / 2) * (x / 2) ** (nu / 2)
    return np.where(u == 0, 1.0, m)  # the limit at u = 0 (the formula is 0 * inf there)


def ref_log_cf(u: np.ndarray, sigma: float, lam: float, jumps: str, **p: float) -> np.ndarray:
    return -(sigma**2) * np.square(u) / 2 + lam * (ref_mixing(jumps, u, **p) - 1)


def ref_quadrature(log_cf, points: int = 17) -> tuple[float, float, np.ndarray, np.ndarray]:
    """u_max (Brent on [0, ub], ub doubled from 1), c = 10 / u_max, Laguerre nodes/weights."""
    ub = 1.0
    while log_cf(np.array([ub]))[0] > -4:
        ub *= 2
    u_max = optimize.brentq(lambda u: log_cf(np.array([u]))[0] + 4, 0.0, ub, xtol=1e-15)
    c = 10.0 / u_max
    x, omega = laggauss(points)
    return u_max, c, x / c, omega / c


def ref_axis_2d(g: np.ndarray) -> np.ndarray:
    """Explicit loops: G[i,j] - G[i,j-1] - G[i-1,j] + G[i-1,j-1], valid positions, (B, n, C)."""
    b, h, w, _ = g.shape
    out = [
        g[:, i, j] - g[:, i, j - 1] - g[:, i - 1, j] + g[:, i - 1, j - 1]
        for i in range(1, h)
        for j in range(1, w)
    ]
    return np.stack(out, 1)


def ref_diagonal_2d(g: np.ndarray) -> np.ndarray:
    """Explicit loops: G[i-1,j] + G[i+1,j] - G[i,j-1] - G[i,j+1], (B, n, C)."""
    b, h, w, _ = g.shape
    out = [
        g[:, i - 1, j] + g[:, i + 1, j] - g[:, i, j - 1] - g[:, i, j + 1]
        for i in range(1, h - 1)
        for j in range(1, w - 1)
    ]
    return np.stack(out, 1)


def ref_axis_3d(g: np.ndarray) -> np.ndarray:
    """Explicit loops: sum over a,b,c in {0,1} of (-1)^(a+b+c) G[t-c, i-a, j-b], (B, n, C)."""
    _, tt, h, w, _ = g.shape
    out = []
    for t in range(1, tt):
        for i in range(1, h):
            for j in range(1, w):
                acc = 0.0
                for a in (0, 1):
                    for b in (0, 1):
                        for c in (0, 1):
                            acc = acc + (-1) ** (a + b + c) * g[:, t - c, i - a, j - b]
                out.append(acc)
    return np.stack(out, 1)


def ref_diagonal_time_3d(g: np.ndarray) -> np.ndarray:
    """Explicit loops: D(t) - D(t-1) with D the 45-degree stencil, (B, n, C)."""
    _, tt, h, w, _ = g.shape
    out = []
    for t in range(1, tt):
        for i in range(1, h - 1):
            for j in range(1, w - 1):
                d = [
                    g[:, s, i - 1, j] + g[:, s, i + 1, j] - g[:, s, i, j - 1] - g[:, s, i, j + 1]
                    for s in (t, t - 1)
                ]
                out.append(d[0] - d[1])
    return np.stack(out, 1)


def ref_ep(z: np.ndarray, u: np.ndarray, w: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """EP_b = 2 sum_i w_i ((mean cos(u_i z) - phi_i)^2 + (mean sin(u_i z))^2), z (B, n)."""
    ang = z[:, :, None] * u[None, None, :]
    err = (np.cos(ang).mean(1) - phi) ** 2 + np.sin(ang).mean(1) ** 2
    return 2 * (err * w).sum(-1)


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


# ---------------------------------------------------------------- jump laws

LAWS = [
    ("laplace", {"alpha": 1.0}),
    ("laplace", {"alpha": 2.5}),
    ("variance_gamma", {"shape": 1.0, "rate": 0.5}),
    ("variance_gamma", {"shape": 0.3, "rate": 2.0}),
    ("student_t", {"nu": 3.0}),
    ("student_t", {"nu": 1.0}),
    ("student_t", {"nu": 7.3}),
]
U = np.array([0.0, 0.01, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0])


def numpy_tau(jumps: str, n: int, rng: np.random.Generator, **p: float) -> np.ndarray:
    """tau ~ rho drawn with NumPy: Exp(rate alpha^2/2), Gamma(k, beta), InvGamma(nu/2, nu/2)."""
    if jumps == "laplace":
        return rng.exponential(scale=2.0 / p["alpha"] ** 2, size=n)
    if jumps == "variance_gamma":
        return rng.gamma(p["shape"], scale=1.0 / p["rate"], size=n)
    return 1.0 / rng.gamma(p["nu"] / 2, scale=2.0 / p["nu"], size=n)


@pytest.mark.parametrize(("jumps", "params"), LAWS)
def test_mixing_matches_closed_form_and_numpy_monte_carlo(jumps: str, params: dict) -> None:
    law = make_jump_law(jumps, **params)
    got = law.mixing(U)
    np.testing.assert_allclose(got, ref_mixing(jumps, U, **params), rtol=1e-12, atol=1e-15)
    # Monte Carlo of E[exp(-tau u^2 / 2)] from NumPy's samplers; tolerance from the MC error.
    tau = numpy_tau(jumps, 200_000, np.random.default_rng(1), **params)
    samples = np.exp(-np.outer(tau, U**2) / 2)  # (n, len(U))
    mc, se = samples.mean(0), samples.std(0) / math.sqrt(len(tau))
    assert np.all(np.abs(got - mc) <= 5 * se + 1e-12), (got, mc, se)


@pytest.mark.parametrize(("jumps", "params"), LAWS)
def test_package_tau_sampler_matches_the_mixing_transform(jumps: str, params: dict) -> None:
    law = make_jump_law(jumps, **params)
    tau = law.sample_tau(100_000, generator=torch.Generator().manual_seed(2)).numpy()
    assert tau.dtype == np.float64 and np.all(tau >= 0)
    u = U[1:]
    samples = np.exp(-np.outer(tau, u**2) / 2)
    mc, se = samples.mean(0), samples.std(0) / math.sqrt(len(tau))
    assert np.all(np.abs(law.mixing(u) - mc) <= 5 * se), (law.mixing(u), mc, se)


def test_student_t_tiny_and_large_u() -> None:
    """Finite everywhere; M -> 1 at u = 1e-8 (at the rate x^(2a) for nu < 2); large-u values
    against elementary K_{n+1/2} and the large-x asymptotic expansion of K_a.

    For half-integer orders K is elementary: K_{3/2}(x) = sqrt(pi/(2x)) e^-x (1 + 1/x) and
    K_{5/2}(x) = sqrt(pi/(2x)) e^-x (1 + 3/x + 3/x^2), so for nu = 3 and nu = 5
    log M(u) = -x + log(1 + x) and -x + log(1 + x + x^2/3) with x = sqrt(nu)|u|.
    """
    tiny = np.array([1e-300, 1e-12, 1e-8])
    for nu in (3.0, 5.0, 40.0, 200.0):
        m = StudentTJumps(nu=nu).mixing(tiny)
        # Log-space round-off is about (nu / 2) |log x| eps.
        assert np.all(np.isfinite(m)) and np.all(np.abs(m - 1) < 1e-11), (nu, m)
    # nu < 2 (a = nu/2 < 1): M is not smooth at 0, 1 - M ~ Gamma(1-a)/Gamma(1+a) (x/2)^(2a).
    nu, a = 0.5, 0.25
    x = math.sqrt(nu) * tiny[1:]
    lead = special.gamma(1 - a) / special.gamma(1 + a) * (x / 2) ** (2 * a)
    np.testing.assert_allclose(1 - StudentTJumps(nu=nu).mixing(tiny[1:]), lead, rtol=1e-3)
    big = np.array([50.0, 1e3, 1e6])
    for nu, ref in (
        (3.0, lambda x: -x + np.log1p(x)),
        (5.0, lambda x: -x + np.log(1 + x + x**2 / 3)),
    ):
        law = StudentTJumps(nu=nu)
        x = math.sqrt(nu) * big
        np.testing.assert_allclose(law.log_mixing(big), ref(x), rtol=1e-12)
        m = law.mixing(big)
        assert np.all(np.isfinite(m)) and np.all(m >= 0)
    # Non-half-integer order: K_a(x) ~ sqrt(pi/(2x)) e^-x (1 + (4a^2-1)/(8x) + ...), relative
    # error of the two-term expansion O(x^-2).
    nu, u = 4.0, np.array([50.0, 1e3])
    a, x = nu / 2, math.sqrt(nu) * u
    log_k = 0.5 * np.log(np.pi / (2 * x)) - x + np.log1p((4 * a * a - 1) / (8 * x))
    ref = math.log(2) - special.gammaln(a) + a * np.log(x / 2) + log_k
    np.testing.assert_allclose(StudentTJumps(nu=nu).log_mixing(u), ref, rtol=1e-6)


@pytest.mark.parametrize("nu", [80.0, 1e4])
def test_student_t_large_nu_against_the_cumulant_expansion(nu: float) -> None:
    """Where K_{nu/2}(x) overflows (small x, large order) the recurrence path must agree with
    log M(u) = -k1 u^2/2 + k2 u^4/8 - ..., k1 = nu/(nu-2), k2 = 2 nu^2/((nu-2)^2 (nu-4)) the
    cumulants of tau ~ InvGamma(nu/2, nu/2); the next term is O(u^6 / nu^2)."""
    u = np.array([1e-8, 1e-4, 1e-2, 0.1, 0.5, 1.0, 2.0]) if nu > 100 else np.array([1e-8, 1e-4])
    k1 = nu / (nu - 2)
    k2 = 2 * nu**2 / ((nu - 2) ** 2 * (nu - 4))
    ref = -k1 * u**2 / 2 + k2 * u**4 / 8
    got = StudentTJumps(nu=nu).log_mixing(u)
    # Absolute round-off of the log-space evaluation: about (nu / 2) |log x| eps, plus one eps
    # per recurrence step.
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-14 * nu)


def test_jump_law_names_and_parameters() -> None:
    with pytest.raises(ValueError, match="laplace, variance_gamma, student_t"):
        make_jump_law("cauchy")
    for bad in (
        lambda: LaplaceJumps(alpha=0.0),
        lambda: VarianceGammaJumps(shape=-1.0),
        lambda: VarianceGammaJumps(rate=float("nan")),
        lambda: StudentTJumps(nu=0.0),
    ):
        with pytest.raises(ValueError, match="must be a finite number > 0"):
            bad()
    assert make_jump_law("variance_gamma", shape=1.0, rate=0.5).mixing(U) == pytest.approx(
        LaplaceJumps(alpha=1.0).mixing(U)
    )


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
