"""Golden values of the jump laws of the Lévy-sheet priors (docs/method.md, Lévy-sheet prior
table): mixing transforms against closed forms and NumPy Monte Carlo, derived independently.

Every expected value is computed in the test from the formulas, with NumPy/SciPy only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from levy_references import (
    ref_mixing,
)
from scipy import special

from levyjepa.priors.jump_laws import (
    LaplaceJumps,
    StudentTJumps,
    VarianceGammaJumps,
    make_jump_law,
)

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
