"""``lejepa``: LeJEPA's invariance to the view centres plus SIGReg, with multi-crop.

R. Balestriero and Y. LeCun, "LeJEPA: Provable and Scalable Self-Supervised Learning Without
the Heuristics", arXiv:2511.08544 (2025). With ``G`` global views (the first view group) and
``L`` local views (the second, smaller group, optional), ``z_v = proj`` of view ``v``::

    centre_n = mean_{g < G} z[g, n]                       (global views only)
    inv      = mean_{v < G+L, n, k} (z[v, n, k] - centre[n, k])^2   (every view predicts it)
    sigreg   = SIGReg(z) over all G + L views
    loss     = lamb * sigreg + kappa * (1 - lamb) * inv

``lamb`` trades SIGReg against invariance as in LeJEPA; ``kappa`` scales the invariance term
alone (the seed's knob: ``kappa = 0`` removes it, experiment 2). ``orig_lejepa_loss = lamb *
sigreg + (1 - lamb) * inv`` is LeJEPA's own loss, logged for comparison with the seed. The seed's
third knob, ``gamma``, the weight of the Lévy prior on the token field, is the ``weight`` of
that prior in the recipe's ``priors`` section (``priors.within.weight``): priors attach to any
method, so they are not LeJEPA's. The LeJEPA guide's multi-crop is 2 global views at 224 px and
6 local views at 96 px (``views.global_views``, ``views.local_views``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
from torch import nn

from levyjepa.core.registry import METHODS, PRIORS
from levyjepa.methods.base import Method, MethodNeeds, MethodOutput, encode_groups, full_precision


@METHODS.register("lejepa")
class LeJEPA(Method):
    """LeJEPA on the pooled projection ``proj``; outputs of the global views for the priors.

    Args:
        lamb: SIGReg weight in ``[0, 1]``; the invariance term gets ``kappa * (1 - lamb)``.
        kappa: Extra weight of the invariance term (``>= 0``).
        sigreg: The SIGReg prior section (``{name: sigreg, slices: 256}``); any registered
            prior taking ``(V, N, K)`` works.

    Outputs: ``emb`` ``(N*G, E)``, ``proj`` ``(G+L, N, K)`` (all views), ``tokens`` and
    ``tokens_proj`` ``(N*G, *grid, ...)`` of the global views.
    """

    needs = MethodNeeds(min_views=2, local_views=True)
    outputs = ("emb", "proj", "tokens", "tokens_proj")

    def __init__(self, *, lamb: float = 0.02, kappa: float = 1.0,
                 sigreg: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__()
        if not 0.0 <= lamb <= 1.0:
            raise ValueError(f"lamb must be in [0, 1], got {lamb}")
        if kappa < 0:
            raise ValueError(f"kappa must be >= 0, got {kappa}")
        self.lamb, self.kappa = lamb, kappa
        self.sigreg: nn.Module = PRIORS.build(dict(sigreg or {"name": "sigreg"}),
                                              where="method.sigreg")

    def forward(self, encoder: nn.Module, views: Sequence[torch.Tensor], *,
                step: int) -> MethodOutput:
        """Terms ``inv``, ``sigreg``, ``orig_lejepa_loss`` and ``loss`` of a batch."""
        groups = encode_groups(encoder, views)
        first = groups[0]
        with full_precision(first.proj):
            centre = first.proj.float().mean(0, keepdim=True)  # (1, N, K): global views only
            proj = torch.cat([g.proj.float() for g in groups]) if len(groups) > 1 \
                else first.proj.float()
            inv = (proj - centre).square().mean()
            sigreg = self.sigreg(proj, step=step)
            terms = {
                "inv": inv,
                "sigreg": sigreg,
                "orig_lejepa_loss": self.lamb * sigreg + (1 - self.lamb) * inv,
                "loss": self.lamb * sigreg + self.kappa * (1 - self.lamb) * inv,
            }
        outputs = {"emb": first.emb, "proj": proj, "tokens": first.tokens}
        if first.tokens_proj is not None:
            outputs["tokens_proj"] = first.tokens_proj
        return MethodOutput(terms=terms, outputs=outputs)

    def extra_repr(self) -> str:
        return f"lamb={self.lamb:g}, kappa={self.kappa:g}"
