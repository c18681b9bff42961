"""The online linear probe on the method's ``emb`` output (docs/method.md, the objective).

It reads ``emb.detach()``, so its cross-entropy trains the probe and nothing else: the reported
``test/acc`` measures the representation without shaping it.
"""

from __future__ import annotations

import torch
from torch import nn


class OnlineProbe(nn.Module):
    """``LayerNorm(E) -> Linear(E, classes)`` on detached embeddings.

    Args:
        emb_dim: Width ``E`` of the embedding.
        classes: Number of outputs.
    """

    def __init__(self, *, emb_dim: int, classes: int) -> None:
        super().__init__()
        if classes < 1:
            raise ValueError(f"probe classes must be >= 1, got {classes}")
        self.net = nn.Sequential(nn.LayerNorm(emb_dim), nn.Linear(emb_dim, classes))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """``(B, E)`` embeddings to ``(B, classes)`` logits; no gradient reaches ``emb``."""
        return self.net(emb.detach())
