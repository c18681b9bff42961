"""The VICReg criterion: invariance, variance and covariance terms on projected embeddings.

A. Bardes, J. Ponce and Y. LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022. For two views ``Z, Z'`` of ``N`` samples with ``K``
dimensions:

* invariance ``s(Z, Z') = (1 / (N K)) sum_i ||z_i - z'_i||^2`` (the mean squared error);
* variance ``v(Z) = (1 / K) sum_j max(0, gamma - sqrt(Var(z^j) + eps))``, a hinge that keeps the
  standard deviation of every dimension over the batch at ``gamma`` or above (``gamma = 1``,
  ``eps = 1e-4``; ``Var`` with the ``N - 1`` denominator);
* covariance ``c(Z) = (1 / K) sum_{j != k} C(Z)_{jk}^2``, ``C(Z)`` the batch covariance (again
  over ``N - 1``), which decorrelates the dimensions;
* ``loss = lambda s + mu (v(Z) + v(Z')) / 2 + nu (c(Z) + c(Z'))`` with the paper's coefficients
  ``lambda = mu = 25``, ``nu = 1``. The variance is averaged over the two branches and the
  covariance summed, as in the paper's pseudo-code.

With ``V > 2`` views the invariance is the mean over all ``V (V - 1) / 2`` pairs, the variance
the mean over views and the covariance ``2 / V`` times the sum over views, so that ``V = 2`` is
the paper's formula and the terms keep their scale as views are added. Statistics are over the
batch given (one process's batch); a distributed caller gathers the batch first.
"""

from __future__ import annotations

import torch
from torch import nn


class VICRegLoss(nn.Module):
    """VICReg's three terms and their weighted sum.

    Args:
        inv_coeff: ``lambda``, weight of the invariance term (>= 0).
        var_coeff: ``mu``, weight of the variance term (>= 0).
        cov_coeff: ``nu``, weight of the covariance term (>= 0).
        gamma: Target standard deviation of every dimension (> 0).
        eps: Added to the variance under the square root (> 0).

    Raises:
        ValueError: naming the invalid argument.
    """

    def __init__(self, *, inv_coeff: float = 25.0, var_coeff: float = 25.0,
                 cov_coeff: float = 1.0, gamma: float = 1.0, eps: float = 1e-4) -> None:
        super().__init__()
        for name, value in (("inv_coeff", inv_coeff), ("var_coeff", var_coeff),
                            ("cov_coeff", cov_coeff)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.inv_coeff, self.var_coeff, self.cov_coeff = inv_coeff, var_coeff, cov_coeff
        self.gamma, self.eps = gamma, eps

    def forward(self, proj: torch.Tensor) -> dict[str, torch.Tensor]:
        """The terms of views ``proj`` ``(V, N, K)``, ``V >= 2``, ``N >= 2``.

        Returns:
            Scalars ``inv``, ``var``, ``cov`` (unweighted) and ``loss`` (weighted sum), in the
            input's dtype and device.
        """
        if proj.ndim != 3 or proj.shape[0] < 2 or proj.shape[1] < 2:
            raise ValueError(f"proj must be (V, N, K) with V >= 2 views and N >= 2 samples, "
                             f"got shape {tuple(proj.shape)}")
        v, n, k = proj.shape
        # invariance: mean squared distance between every pair of views of the same sample
        pairs = [(a, b) for a in range(v) for b in range(a + 1, v)]
        inv = torch.stack([(proj[a] - proj[b]).pow(2).mean() for a, b in pairs]).mean()
        centred = proj - proj.mean(dim=1, keepdim=True)
        # variance: hinge on each dimension's standard deviation over the batch
        std = torch.sqrt(centred.pow(2).sum(dim=1) / (n - 1) + self.eps)  # (V, K)
        var = torch.relu(self.gamma - std).mean()
        # covariance: squared off-diagonal entries of each view's covariance matrix
        cov_m = centred.transpose(1, 2) @ centred / (n - 1)  # (V, K, K)
        off = cov_m.pow(2).sum(dim=(1, 2)) - torch.diagonal(cov_m, dim1=1, dim2=2).pow(2).sum(1)
        cov = (2.0 / v) * (off / k).sum()
        loss = self.inv_coeff * inv + self.var_coeff * var + self.cov_coeff * cov
        return {"inv": inv, "var": var, "cov": cov, "loss": loss}
