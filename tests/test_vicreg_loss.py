"""VICReg's terms against a NumPy reference written from the paper's definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from levyjepa.methods.vicreg_loss import VICRegLoss


def _reference(z: np.ndarray, a: np.ndarray, *, gamma: float = 1.0, eps: float = 1e-4
               ) -> tuple[float, float, float]:
    """Two views (N, K) in float64, written out loop by loop from Bardes et al. 2022."""
    n, k = z.shape
    inv = sum((z[i, j] - a[i, j]) ** 2 for i in range(n) for j in range(k)) / (n * k)

    def var_term(x):
        total = 0.0
        for j in range(k):
            col = x[:, j]
            variance = sum((c - col.mean()) ** 2 for c in col) / (n - 1)
            total += max(0.0, gamma - np.sqrt(variance + eps))
        return total / k

    def cov_term(x):
        xc = x - x.mean(axis=0)
        total = 0.0
        for p in range(k):
            for q in range(k):
                if p != q:
                    total += (sum(xc[i, p] * xc[i, q] for i in range(n)) / (n - 1)) ** 2
        return total / k

    return inv, (var_term(z) + var_term(a)) / 2, cov_term(z) + cov_term(a)


def test_terms_match_the_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 5)) * np.array([0.3, 1.0, 2.0, 0.5, 1.5])
    a = z + 0.1 * rng.normal(size=(7, 5))
    a[:, 0] += 0.8 * a[:, 1]  # correlated dimensions: a covariance term to measure
    inv, var, cov = _reference(z, a)
    out = VICRegLoss()(torch.tensor(np.stack([z, a])))
    assert float(out["inv"]) == pytest.approx(inv, rel=1e-12)
    assert float(out["var"]) == pytest.approx(var, rel=1e-12)
    assert float(out["cov"]) == pytest.approx(cov, rel=1e-12)
    assert float(out["loss"]) == pytest.approx(25 * inv + 25 * var + cov, rel=1e-12)
    assert var > 0 and cov > 0  # the sample exercises every term


def test_collapse_is_penalised_and_a_whitened_batch_is_not() -> None:
    loss = VICRegLoss()
    collapsed = torch.zeros(2, 16, 4)
    out = loss(collapsed)
    assert float(out["var"]) == pytest.approx(1 - 1e-2, rel=1e-6)  # gamma - sqrt(eps)
    assert float(out["inv"]) == 0 and float(out["cov"]) == 0
    # an orthogonal design with unit variance: no variance or covariance penalty
    h = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]],
                     dtype=torch.float64)[:, 1:]
    white = h * np.sqrt(3 / 4)  # columns: mean 0, variance 1 over N - 1 = 3
    out = loss(torch.stack([white, white]))
    assert float(out["cov"]) == pytest.approx(0, abs=1e-12)
    assert float(out["var"]) == pytest.approx(0, abs=1e-12)


def test_more_views_average_pairs_and_keep_two_views_exact() -> None:
    torch.manual_seed(0)
    proj = torch.randn(3, 8, 4, dtype=torch.float64)
    loss = VICRegLoss(inv_coeff=1, var_coeff=1, cov_coeff=1)
    three = loss(proj)
    pairs = [loss(proj[[a, b]]) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert float(three["inv"]) == pytest.approx(sum(float(p["inv"]) for p in pairs) / 3)
    singles = [loss(proj[[v, v]]) for v in range(3)]  # var of a view, cov twice that view's
    assert float(three["var"]) == pytest.approx(sum(float(s["var"]) for s in singles) / 3)
    assert float(three["cov"]) == pytest.approx(sum(float(s["cov"]) for s in singles) / 3)


def test_gradients_flow_and_dtype_follows_the_input() -> None:
    proj = torch.randn(2, 6, 3, dtype=torch.float32, requires_grad=True)
    out = VICRegLoss()(proj)
    out["loss"].backward()
    assert out["loss"].dtype == torch.float32 and torch.isfinite(proj.grad).all()
    assert proj.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs,name", [({"inv_coeff": -1}, "inv_coeff"),
                                         ({"gamma": 0}, "gamma"), ({"eps": 0}, "eps")])
def test_bad_arguments_name_themselves(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        VICRegLoss(**kwargs)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"proj must be \(V, N, K\)"):
        VICRegLoss()(torch.randn(1, 4, 3))
