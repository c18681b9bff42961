"""``align_uniform``: alignment and uniformity on the hypersphere.

T. Wang and P. Isola, "Understanding Contrastive Representation Learning through Alignment and
Uniformity on the Hypersphere", ICML 2020. With ``z`` the L2-normalised projections of the
views, ``align = E ||z_a - z_b||^2`` over pairs of views of a sample and ``uniform = log E
exp(-t ||z_i - z_j||^2)`` over pairs of samples of a view; ``loss = align + weight * uniform``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from levyjepa import METHODS
from levyjepa.methods import Method, MethodNeeds, MethodOutput, full_precision


@METHODS.register("align_uniform")
class AlignUniform(Method):
    """Alignment of the views of a sample plus uniformity of the batch on the sphere.

    Args:
        weight: Weight of the uniformity term.
        t: Temperature of the uniformity kernel.
    """

    needs = MethodNeeds(min_views=2)  # two views or more, one resolution
    outputs = ("emb", "proj", "tokens_proj")  # what priors may attach to

    def __init__(self, *, weight: float = 1.0, t: float = 2.0) -> None:
        super().__init__()
        if weight < 0 or t <= 0:
            raise ValueError(f"weight must be >= 0 and t > 0, got {weight}, {t}")
        self.weight, self.t = weight, t

    def forward(self, encoder, views, *, step):
        out = encoder(views[0])  # views[0]: (N, V, C, H, W), the global views
        with full_precision(out.proj):
            z = F.normalize(out.proj.float(), dim=-1)  # (V, N, K)
            v = z.shape[0]
            align = torch.stack([(z[a] - z[b]).square().sum(-1).mean()
                                 for a in range(v) for b in range(a + 1, v)]).mean()
            sq = torch.cdist(z, z).square()  # (V, N, N)
            off = ~torch.eye(z.shape[1], dtype=torch.bool, device=z.device)
            uniform = torch.stack([sq[i][off].mul(-self.t).exp().mean().log()
                                   for i in range(v)]).mean()
            loss = align + self.weight * uniform
        outputs = {"emb": out.emb, "proj": out.proj}
        if out.tokens_proj is not None:  # built when a prior reads it
            outputs["tokens_proj"] = out.tokens_proj
        return MethodOutput(terms={"align": align, "uniform": uniform, "loss": loss},
                            outputs=outputs)
