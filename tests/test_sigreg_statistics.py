"""SIGReg (docs/method.md, SIGReg): golden values, calibration under the null, and power.

The reference below is written from the formula of docs/method.md in NumPy float64; only the random
directions are drawn with torch, because the prior must draw exactly those (a generator seeded by
the global step, ``torch.randn(K, M)``, columns normalised to unit length).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from levyjepa import PRIORS

DT = 3.0 / 16.0
KNOTS = 3.0 * np.arange(17) / 16.0  # t_j = 3 j / 16, j = 0..16


def doubled_trapezoid(knots: int, t_max: float) -> np.ndarray:
    """Trapezoid weights on ``[0, t_max]`` doubled: ``2 dt`` inside, ``dt`` at both ends."""
    dt = t_max / (knots - 1)
    w = np.full(knots, 2.0 * dt)
    w[0] = w[-1] = dt
    return w


def directions(step: int, k: int, m: int) -> np.ndarray:
    """The ``(K, M)`` unit directions of ``step``: torch draws, NumPy float64 normalises."""
    gen = torch.Generator().manual_seed(step)
    a = torch.randn(k, m, generator=gen).numpy().astype(np.float64)
    return a / np.linalg.norm(a, axis=0, keepdims=True)


def sigreg_numpy(
    x: np.ndarray, step: int, *, slices: int = 256, knots: int = 17, t_max: float = 3.0
) -> float:
    """docs/method.md, SIGReg in float64 on ``x`` of shape ``(V, N, K)``."""
    _, n, k = x.shape
    t = t_max * np.arange(knots) / (knots - 1)
    phi = np.exp(-0.5 * t**2)
    w = doubled_trapezoid(knots, t_max)
    proj = x @ directions(step, k, slices)  # (V, N, M)
    angles = proj[..., None] * t  # (V, N, M, J)
    err = (np.cos(angles).mean(1) - phi) ** 2 + np.sin(angles).mean(1) ** 2  # (V, M, J)
    stat = n * (err * w * phi).sum(-1)  # (V, M)
    return float(stat.mean())


def null_expectation(knots: int = 17, t_max: float = 3.0) -> float:
    """``E[stat]`` for ``x ~ N(0, I)``, exact for every batch size ``N``.

    With ``x = proj @ a ~ N(0, 1)`` for a unit ``a``: ``E cos(t x) = phi(t) = exp(-t^2/2)``,
    ``E sin(t x) = 0`` and ``E cos^2 + E sin^2 = 1``, so over ``N`` i.i.d. samples
    ``E err_j = Var(mean cos) + Var(mean sin) = (1 - phi(t_j)^2) / N`` and
    ``E stat = sum_j w_j phi(t_j) (1 - phi(t_j)^2)``.
    """
    t = t_max * np.arange(knots) / (knots - 1)
    phi = np.exp(-0.5 * t**2)
    return float((doubled_trapezoid(knots, t_max) * phi * (1.0 - phi**2)).sum())


# ---- (a) golden -------------------------------------------------------------------------------


def test_knots_and_doubled_trapezoid_weights() -> None:
    prior = PRIORS.build({"name": "sigreg"})
    assert prior.slices == 256
    np.testing.assert_allclose(prior.t.double().numpy(), KNOTS, rtol=0, atol=1e-7)
    w = doubled_trapezoid(17, 3.0)
    assert w[0] == w[-1] == pytest.approx(DT) and np.all(w[1:-1] == pytest.approx(2 * DT))
    assert w.sum() == pytest.approx(6.0)  # the integral of 1 over [-3, 3]
    phi = np.exp(-0.5 * KNOTS**2)
    np.testing.assert_allclose(prior.gauss_cf.double().numpy(), phi, rtol=1e-6)
    # the registered weights are the quadrature weights times the Gaussian CF
    np.testing.assert_allclose(prior.weights.double().numpy(), w * phi, rtol=1e-6)


@pytest.mark.parametrize(
    ("shape", "step", "kwargs"),
    [
        ((3, 10, 5), 7, {}),
        ((2, 24, 16), 123, {}),
        ((1, 9, 4), 0, {"slices": 5, "knots": 9, "t_max": 2.0}),
    ],
)
def test_golden_value_matches_numpy_reference(
    shape: tuple[int, int, int], step: int, kwargs: dict
) -> None:
    """Tolerance: rel 1e-5 (the prior works in float32, the reference in float64)."""
    rng = np.random.default_rng(2024)
    # a skewed, shifted, non-Gaussian input so every term of the statistic matters
    x32 = (rng.standard_normal(shape) * 1.3 + 0.4 * rng.exponential(size=shape) - 0.2).astype(
        np.float32
    )
    prior = PRIORS.build({"name": "sigreg", **kwargs})
    got = prior(torch.from_numpy(x32), step=step)
    assert got.dtype == torch.float32 and got.dim() == 0
    want = sigreg_numpy(x32.astype(np.float64), step, **kwargs)
    assert want > 0.5  # far from zero: a relative comparison is meaningful
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_one_view_input_and_step_seeding() -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(40, 6, generator=gen) * 0.7
    prior = PRIORS.build({"name": "sigreg"})
    # (N, K) is one view
    assert prior(x, step=3).item() == prior(x[None], step=3).item()
    # the same step draws the same directions; another step draws others
    assert prior(x, step=3).item() == prior(x, step=3).item()
    assert prior(x, step=3).item() != prior(x, step=4).item()
    assert prior(x, step=4).item() == pytest.approx(
        sigreg_numpy(x[None].double().numpy(), 4), rel=1e-5
    )


# ---- (b) calibration under the null -----------------------------------------------------------

Z_BOUND = 4.0


def test_null_expectation_value() -> None:
    # the closed form written out term by term (dt at both ends, 2 dt inside)
    t = KNOTS
    phi = np.exp(-0.5 * t**2)
    by_hand = DT * (phi[0] * (1 - phi[0] ** 2) + phi[-1] * (1 - phi[-1] ** 2)) + 2 * DT * sum(
        phi[j] * (1 - phi[j] ** 2) for j in range(1, 16)
    )
    assert null_expectation() == pytest.approx(by_hand, rel=1e-12)
    assert null_expectation() == pytest.approx(1.05246415, rel=1e-7)


@pytest.mark.parametrize("n", [8, 128])
def test_null_mean_matches_exact_expectation(n: int) -> None:
    """Monte Carlo over 300 seeds of standard-normal ``(V=4, N, K=16)`` inputs.

    The mean of ``sigreg`` must match ``sum_j w_j phi_j (1 - phi_j^2)`` (about 1.0525) for small
    and large ``N`` alike: ``|z| < 4`` with ``z = (mean - E) / (sd / sqrt(R))``. The expectation
    does not depend on the number of directions, so 64 of them keep the test fast. An error in
    the weights (not doubled: E halves), a missing ``N`` factor or a local ``N`` would move the
    mean by many standard errors (the standard error is about 0.006).
    """
    repeats = 300
    prior = PRIORS.build({"name": "sigreg", "slices": 64})
    gen = torch.Generator().manual_seed(1000 + n)
    values = np.array(
        [prior(torch.randn(4, n, 16, generator=gen), step=s).item() for s in range(repeats)]
    )
    expected = null_expectation()
    se = values.std(ddof=1) / math.sqrt(repeats)
    z = (values.mean() - expected) / se
    print(f"N={n}: mean {values.mean():.4f} vs E {expected:.4f}, se {se:.4f}, z {z:+.2f}")
    assert abs(z) < Z_BOUND, (values.mean(), expected, se, z)
    assert se < 0.01  # the check resolves a 1% error in the mean


# ---- (c) power --------------------------------------------------------------------------------

POWER_N = 256
NULL_REPEATS = 100
ALT_REPEATS = 20


def _uniform(gen: torch.Generator, k: int) -> torch.Tensor:
    return (torch.rand(4, POWER_N, k, generator=gen) * 2.0 - 1.0) * math.sqrt(3.0)


def _laplace(gen: torch.Generator, k: int) -> torch.Tensor:
    """Multivariate symmetric Laplace: ``sqrt(E) g`` with ``E ~ Exp(1)``, ``g ~ N(0, I)``.

    Every projection on a unit direction is exactly Laplace with unit variance.
    """
    scale = -torch.log1p(-torch.rand(4, POWER_N, 1, generator=gen))
    return scale.sqrt() * torch.randn(4, POWER_N, k, generator=gen)


def _low_rank(gen: torch.Generator, k: int) -> torch.Tensor:
    """Rank 2 in ``K`` dims, total variance ``K`` (unit variance per direction on average)."""
    basis, _ = torch.linalg.qr(torch.randn(k, 2, generator=gen))  # orthonormal columns
    return torch.randn(4, POWER_N, 2, generator=gen) @ basis.T * math.sqrt(k / 2)


ALTERNATIVES = {
    # i.i.d. uniform coordinates are nearly Gaussian along a random direction of a 16-D space
    # (central limit theorem; at N = 256 SIGReg scores them like the null), so the uniform law is
    # tested on a 1-D embedding, where every direction sees the uniform marginal.
    "uniform_K1": (_uniform, 1),
    "laplace_K16": (_laplace, 16),
    "low_rank2_K16": (_low_rank, 16),
}


def slices_for(k: int) -> int:
    """The default 256 directions; in 1-D every unit direction is +-1 and both give the same
    statistic (cos is even, sin enters squared), so one direction computes the same value."""
    return 1 if k == 1 else 256


@pytest.fixture(scope="module")
def null_values() -> dict[int, np.ndarray]:
    """``sigreg`` of standard-normal ``(4, 256, K)`` inputs over 100 seeds, for K = 1 and 16."""
    out = {}
    for k in (1, 16):
        prior = PRIORS.build({"name": "sigreg", "slices": slices_for(k)})
        gen = torch.Generator().manual_seed(77 + k)
        out[k] = np.array(
            [
                prior(torch.randn(4, POWER_N, k, generator=gen), step=s).item()
                for s in range(NULL_REPEATS)
            ]
        )
    return out


@pytest.mark.parametrize("name", list(ALTERNATIVES))
def test_non_gaussian_embeddings_score_higher(name: str, null_values: dict) -> None:
    """At N = 256 each of 20 draws of the alternative exceeds the null's 99th percentile (100
    standard-normal draws of the same shape), and the alternative's median exceeds 3x the null's
    mean."""
    draw, k = ALTERNATIVES[name]
    null = null_values[k]
    assert abs(null.mean() - null_expectation()) < 0.1  # the reference is itself calibrated
    prior = PRIORS.build({"name": "sigreg", "slices": slices_for(k)})
    gen = torch.Generator().manual_seed(5)
    draws = [draw(gen, k) for _ in range(ALT_REPEATS)]
    second_moment = float(torch.stack([x.square().mean() for x in draws]).mean())
    assert second_moment == pytest.approx(1.0, abs=0.1)  # unit variance: not a scale effect
    alt = np.array([prior(x, step=10_000 + s).item() for s, x in enumerate(draws)])
    print(
        f"{name}: null mean {null.mean():.3f} p99 {np.percentile(null, 99):.3f}; "
        f"alternative min {alt.min():.3f} median {np.median(alt):.3f}"
    )
    assert alt.min() > np.percentile(null, 99), (alt.min(), np.percentile(null, 99))
    assert np.median(alt) > 3.0 * null.mean(), (np.median(alt), null.mean())
