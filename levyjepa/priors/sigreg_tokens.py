"""``sigreg_tokens``: SIGReg on a token field rather than on the pooled projection.

SIGReg (:class:`levyjepa.priors.sigreg.SIGReg`; R. Balestriero and Y. LeCun, "LeJEPA",
arXiv:2511.08544) compares random 1-D projections of a set of embeddings ``(V, N, K)`` with
``N(0, 1)``, one statistic per view ``v``, averaged. Seed ``003`` also trains a SIGReg baseline
on tokens; this prior reads a token field ``tokens_proj`` ``(N*V, *grid, K)`` (``grid`` is
``(H', W')`` for images, ``(T', H', W')`` for clips) and hands SIGReg one of two sets:

- ``samples: position`` (default): each grid position is a "view" whose ``N*V`` samples are the
  tokens at that position over the batch, so SIGReg gets ``(P, N*V, K)`` with ``P`` positions:
  the tokens at every position must be isotropic Gaussian over images (the statistic's scale
  stays that of SIGReg on ``proj``: ``N*V`` samples per set);
- ``samples: all``: every token of the batch is one sample, ``(1, N*V*P, K)``: the pooled
  distribution of all tokens must be isotropic Gaussian (a mixture over positions may pass).

Attach it to a method's token field in a recipe (``priors.tokens: {name: sigreg_tokens, input:
tokens_proj, weight: 0.02}``).
"""

from __future__ import annotations

import torch

from levyjepa.core.registry import PRIORS
from levyjepa.priors.sigreg import SIGReg

SAMPLES = ("position", "all")
"""Valid values of ``samples``."""


@PRIORS.register("sigreg_tokens")
class SIGRegTokens(SIGReg):
    """SIGReg on a token field ``(N*V, *grid, K)`` (see the module docstring).

    Args:
        samples: ``position`` (one sample set per grid position) or ``all`` (one set of every
            token).
        slices: Number of random directions per step.
        knots: Number of quadrature knots on ``[0, t_max]``.
        t_max: Upper end of the frequency range.
    """

    def __init__(self, *, samples: str = "position", slices: int = 256, knots: int = 17,
                 t_max: float = 3.0) -> None:
        super().__init__(slices=slices, knots=knots, t_max=t_max)
        if samples not in SAMPLES:
            raise ValueError(f"sigreg_tokens: samples must be one of {', '.join(SAMPLES)}, "
                             f"got {samples!r}")
        self.samples = samples

    def forward(self, proj: torch.Tensor, *, step: int) -> torch.Tensor:
        """The SIGReg statistic of the token field ``proj`` ``(N*V, *grid, K)``, scalar float32."""
        if proj.dim() < 3:
            raise ValueError(f"sigreg_tokens expects a token field (N*V, *grid, K), got shape "
                             f"{tuple(proj.shape)}")
        if self.samples == "all":
            sets = proj.reshape(1, -1, proj.shape[-1])  # (1, N*V*P, K)
        else:
            sets = proj.flatten(1, -2).transpose(0, 1)  # (P, N*V, K)
        return super().forward(sets, step=step)

    def extra_repr(self) -> str:
        return f"samples={self.samples}, slices={self.slices}"
