"""``vicreg``: VICReg on the encoder's pooled projection (:mod:`levyjepa.methods.vicreg_loss`).

A. Bardes, J. Ponce and Y. LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022: invariance between the views of a sample, a hinge keeping
every dimension's standard deviation over the batch at ``gamma = 1`` or above (``eps = 1e-4``),
and the squared off-diagonal covariance; coefficients 25 / 25 / 1. The variance and covariance
are statistics of the *global* batch: with several processes the projections are gathered
(differentiably) first, so a run means the same on one process or eight. The paper's expander
(three 8192-wide layers) is the encoder's projector here (``encoder.proj_hidden``,
``encoder.proj_dim``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from levyjepa.core.dist import all_gather_cat
from levyjepa.core.registry import METHODS
from levyjepa.methods.base import Method, MethodNeeds, MethodOutput, full_precision
from levyjepa.methods.vicreg_loss import VICRegLoss


@METHODS.register("vicreg")
class VICReg(Method):
    """VICReg on ``proj`` ``(V, N, K)`` of the global views (``V >= 2``).

    Args:
        inv_coeff: Weight of the invariance term (the paper's ``lambda``, 25).
        var_coeff: Weight of the variance term (``mu``, 25).
        cov_coeff: Weight of the covariance term (``nu``, 1).
        gamma: Target standard deviation of each dimension.
        eps: Added to the variance under the square root.

    Terms ``inv``, ``var``, ``cov`` (unweighted) and ``loss``; outputs ``emb``, ``proj``,
    ``tokens`` and ``tokens_proj`` of the views.
    """

    needs = MethodNeeds(min_views=2)
    outputs = ("emb", "proj", "tokens", "tokens_proj")

    def __init__(self, *, inv_coeff: float = 25.0, var_coeff: float = 25.0,
                 cov_coeff: float = 1.0, gamma: float = 1.0, eps: float = 1e-4) -> None:
        super().__init__()
        self.criterion = VICRegLoss(inv_coeff=inv_coeff, var_coeff=var_coeff,
                                    cov_coeff=cov_coeff, gamma=gamma, eps=eps)

    def forward(self, encoder: nn.Module, views: Sequence[torch.Tensor], *,
                step: int) -> MethodOutput:
        """The VICReg terms of a batch (``step`` is unused: VICReg draws nothing)."""
        out = encoder(views[0])
        with full_precision(out.proj):
            terms = self.criterion(all_gather_cat(out.proj.float(), dim=1))
        outputs = {"emb": out.emb, "proj": out.proj, "tokens": out.tokens}
        if out.tokens_proj is not None:
            outputs["tokens_proj"] = out.tokens_proj
        return MethodOutput(terms=terms, outputs=outputs)
