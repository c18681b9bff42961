"""SIGReg: sketched isotropic Gaussian regularisation of the pooled embedding.

Reference: R. Balestriero and Y. LeCun, "LeJEPA: Provable and Scalable Self-Supervised Learning
Without the Heuristics", arXiv:2511.08544 (2025), Algorithm 1; the Epps-Pulley test is
T. W. Epps and L. B. Pulley, "A test for normality based on the empirical characteristic
function", Biometrika 70(3), 1983.
"""

from __future__ import annotations

import torch
from torch import nn

from levyjepa.core.dist import all_reduce_sum, world_size
from levyjepa.core.registry import PRIORS


@PRIORS.register("sigreg")
class SIGReg(nn.Module):
    """Epps-Pulley distance of random 1-D projections of the embedding to ``N(0, 1)``.

    For each of ``slices`` random unit directions ``a`` (drawn from a generator seeded by the
    global step, so identical on every process) the projection ``x = proj @ a`` is compared with
    the standard normal through its empirical characteristic function on knots
    ``t_j = t_max * j / (knots - 1)``::

        err_j = (mean_n cos(t_j x) - exp(-t_j^2 / 2))^2 + (mean_n sin(t_j x))^2
        stat  = N * sum_j w_j exp(-t_j^2 / 2) err_j

    where ``w`` are trapezoid weights on ``[0, t_max]`` doubled (the integrand is even in ``t``,
    so this is the integral over ``[-t_max, t_max]``) and ``N`` is the global batch size. The
    loss is the mean of ``stat`` over views and directions. Under the null the statistic is
    ``O(1)`` whatever ``N``; an embedding that is not isotropic Gaussian grows linearly in ``N``.

    Args:
        slices: Number of random directions per step (``M``).
        knots: Number of quadrature knots on ``[0, t_max]``.
        t_max: Upper end of the frequency range.
    """

    def __init__(self, *, slices: int = 256, knots: int = 17, t_max: float = 3.0) -> None:
        super().__init__()
        if slices < 1:
            raise ValueError(f"sigreg: slices must be >= 1, got {slices}")
        if knots < 2:
            raise ValueError(f"sigreg: knots must be >= 2, got {knots}")
        if not t_max > 0:
            raise ValueError(f"sigreg: t_max must be > 0, got {t_max}")
        self.slices = slices
        t = torch.linspace(0.0, t_max, knots, dtype=torch.float64)
        dt = t_max / (knots - 1)
        trapezoid = torch.full((knots,), 2.0 * dt, dtype=torch.float64)
        trapezoid[0] = trapezoid[-1] = dt
        gauss_cf = torch.exp(-0.5 * t**2)
        self.register_buffer("t", t.float(), persistent=False)
        self.register_buffer("gauss_cf", gauss_cf.float(), persistent=False)
        self.register_buffer("weights", (trapezoid * gauss_cf).float(), persistent=False)

    def forward(self, proj: torch.Tensor, *, step: int) -> torch.Tensor:
        """Compute the loss.

        Args:
            proj: Embeddings ``(V, N, K)`` (or ``(N, K)``, one view), any float dtype.
            step: Global optimisation step; seeds the directions.

        Returns:
            Scalar float32 loss.
        """
        if proj.dim() == 2:
            proj = proj.unsqueeze(0)
        if proj.dim() != 3:
            raise ValueError(f"sigreg expects (V, N, K) embeddings, got shape {tuple(proj.shape)}")
        device = proj.device
        with torch.autocast(device_type=device.type, enabled=False):
            x = proj.float()
            gen = torch.Generator(device=device)
            gen.manual_seed(int(step))
            dirs = torch.randn(x.shape[-1], self.slices, generator=gen, device=device)
            dirs = dirs / dirs.norm(dim=0, keepdim=True)
            t = self.t.to(device)
            angles = (x @ dirs).unsqueeze(-1) * t  # (V, N, M, knots)
            # Sums over the local batch, then over processes: the global empirical CF.
            sums = torch.stack((angles.cos().sum(1), angles.sin().sum(1)))  # (2, V, M, knots)
            sums = all_reduce_sum(sums)
            n_global = x.shape[1] * world_size()
            cos_mean, sin_mean = sums / n_global
            err = (cos_mean - self.gauss_cf.to(device)).square() + sin_mean.square()
            stat = n_global * (err * self.weights.to(device)).sum(-1)  # (V, M)
            return stat.mean()

    def extra_repr(self) -> str:
        return f"slices={self.slices}, knots={self.t.numel()}, t_max={float(self.t[-1]):g}"
