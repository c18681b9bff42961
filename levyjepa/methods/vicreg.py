"""``vicreg``: VICReg on the encoder's pooled projection (:mod:`levyjepa.methods.vicreg_loss`).

A. Bardes, J. Ponce and Y. LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022: invariance between the views of a sample, a hinge keeping
every dimension's standard deviation over the batch at ``gamma = 1`` or above (``eps = 1e-4``),
and the squared off-diagonal covariance; coefficients 25 / 25 / 1. The variance and covariance
are statistics of the *global* batch: with several processes the projections are gathered
(differentiably) first, so a run means the same on one process or eight. The paper's expander
(three 8192-wide layers) is the encoder's projector here (``encoder.proj_hidden``,
``encoder.proj_dim``).

``projector_batchnorm``: the projector is a BatchNorm MLP, and its BatchNorm statistics depend
on which rows it sees together.

* ``per_view`` (the default): the encoder runs once per view, so every BatchNorm (the
  projector's, and the backbone's if it has any) normalises each view by that view's batch
  statistics alone, as in the authors' code (facebookresearch/vicreg, ``main_vicreg.py``, runs
  backbone and projector on ``x`` and then on ``y``) and the paper's pseudo-code. The work
  of one call on the stacked views, in ``V`` calls of ``N`` samples; with several
  processes the global BatchNorm (``trainer.sync_batchnorm``) takes each view's statistics over
  the global batch, since every process makes the same calls in the same order.
* ``joint``: one call on the ``V N`` stacked views, so BatchNorm mixes the views' statistics;
  the earlier behaviour, which the committed recipes with measured results pin.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from levyjepa.core.dist import all_gather_cat
from levyjepa.core.registry import METHODS
from levyjepa.encoders.output import EncoderOutput
from levyjepa.methods.base import Method, MethodNeeds, MethodOutput, full_precision
from levyjepa.methods.vicreg_loss import VICRegLoss

PROJECTOR_BATCHNORM = ("per_view", "joint")
"""How the views meet the projector's BatchNorm: one view at a time (the reference) or all."""


def encode_per_view(encoder: nn.Module, views: torch.Tensor) -> EncoderOutput:
    """The encoder on each view of ``(N, V, ...)`` ``views`` alone, assembled as one call's
    output: ``emb`` ``(N*V, E)`` (row ``n*V + v``), ``proj`` ``(V, N, K)``, ``tokens`` and
    ``tokens_proj`` ``(N*V, ...)``. Each view's BatchNorm statistics are its own."""
    outs = [encoder(views[:, v:v + 1]) for v in range(views.shape[1])]

    def interleave(parts: list[torch.Tensor]) -> torch.Tensor:  # (N, ...) per view -> (N*V, ...)
        return torch.stack(parts, 1).flatten(0, 1)

    proj = (torch.cat([o.proj for o in outs]) if outs[0].proj is not None else None)
    tokens_proj = (interleave([o.tokens_proj for o in outs])
                   if outs[0].tokens_proj is not None else None)
    return EncoderOutput(emb=interleave([o.emb for o in outs]), proj=proj,
                         tokens=interleave([o.tokens for o in outs]), tokens_proj=tokens_proj)


@METHODS.register("vicreg")
class VICReg(Method):
    """VICReg on ``proj`` ``(V, N, K)`` of the global views (``V >= 2``).

    Args:
        inv_coeff: Weight of the invariance term (the paper's ``lambda``, 25).
        var_coeff: Weight of the variance term (``mu``, 25).
        cov_coeff: Weight of the covariance term (``nu``, 1).
        gamma: Target standard deviation of each dimension.
        eps: Added to the variance under the square root.
        projector_batchnorm: ``per_view`` (default: the encoder runs on each view alone, so
            BatchNorm normalises each view by its own statistics, as the reference does) or
            ``joint`` (one call on the stacked views, the earlier behaviour).

    Terms ``inv``, ``var``, ``cov`` (unweighted) and ``loss``; outputs ``emb``, ``proj``,
    ``tokens`` and ``tokens_proj`` of the views.
    """

    needs = MethodNeeds(min_views=2)
    outputs = ("emb", "proj", "tokens", "tokens_proj")

    def __init__(self, *, inv_coeff: float = 25.0, var_coeff: float = 25.0,
                 cov_coeff: float = 1.0, gamma: float = 1.0, eps: float = 1e-4,
                 projector_batchnorm: str = "per_view") -> None:
        super().__init__()
        if projector_batchnorm not in PROJECTOR_BATCHNORM:
            raise ValueError(f"projector_batchnorm must be one of "
                             f"{', '.join(PROJECTOR_BATCHNORM)}, got {projector_batchnorm!r}")
        self.projector_batchnorm = projector_batchnorm
        self.criterion = VICRegLoss(inv_coeff=inv_coeff, var_coeff=var_coeff,
                                    cov_coeff=cov_coeff, gamma=gamma, eps=eps)

    def forward(self, encoder: nn.Module, views: Sequence[torch.Tensor], *,
                step: int) -> MethodOutput:
        """The VICReg terms of a batch (``step`` is unused: VICReg draws nothing)."""
        out = (encode_per_view(encoder, views[0]) if self.projector_batchnorm == "per_view"
               else encoder(views[0]))
        with full_precision(out.proj):
            terms = self.criterion(all_gather_cat(out.proj.float(), dim=1))
        outputs = {"emb": out.emb, "proj": out.proj, "tokens": out.tokens}
        if out.tokens_proj is not None:
            outputs["tokens_proj"] = out.tokens_proj
        return MethodOutput(terms=terms, outputs=outputs)

    def extra_repr(self) -> str:
        return f"projector_batchnorm={self.projector_batchnorm}"
