"""Custom priors, registered in levyjepa's PRIORS registry when this module is imported.

``isotropic_moments`` is defined here; the import of :mod:`levyjepa_example_plugin.stable`
registers ``stable_sheet2d``, a Lévy-type prior given only by its characteristic function.
"""

from __future__ import annotations

import torch
from torch import nn

from levyjepa import PRIORS
from levyjepa_example_plugin import stable  # noqa: F401  (registers stable_sheet2d)


@PRIORS.register("isotropic_moments")
class IsotropicMoments(nn.Module):
    """Match the first two moments of each view's embeddings to those of ``N(0, I)``.

    ``loss = |mean|^2 + weight_cov * |cov - I|_F^2 / K``, averaged over views: a cheaper, weaker
    cousin of SIGReg, which matches the whole distribution of every 1-D projection (a
    moment-matching prior in the spirit of VICReg, Bardes, Ponce and LeCun, ICLR 2022).

    Args:
        weight_cov: Weight of the covariance term.
    """

    def __init__(self, *, weight_cov: float = 1.0) -> None:
        super().__init__()
        if weight_cov < 0:
            raise ValueError(f"weight_cov must be >= 0, got {weight_cov}")
        self.weight_cov = weight_cov

    def forward(self, proj: torch.Tensor, *, step: int) -> torch.Tensor:
        """``proj`` ``(V, N, K)`` (or ``(N, K)``) to a scalar; ``step`` is unused."""
        x = proj.float() if proj.dim() == 3 else proj.float().unsqueeze(0)
        mean = x.mean(1, keepdim=True)
        centred = x - mean
        cov = centred.transpose(1, 2) @ centred / max(1, x.shape[1] - 1)  # (V, K, K)
        eye = torch.eye(x.shape[-1], device=x.device, dtype=x.dtype)
        cov_err = (cov - eye).square().sum((1, 2)) / x.shape[-1]
        return (mean.square().sum((1, 2)) + self.weight_cov * cov_err).mean()
