"""The online linear probe on the method's ``emb`` output (docs/method.md, the objective).

It reads ``emb.detach()``, so its cross-entropy trains the probe and nothing else: the reported
``test/acc`` measures the representation without shaping it. A method that declares
``needs.labels_train_encoder`` (``supervised``, a study's supervised reference) gets a probe built
with ``detach=False``: the same cross-entropy then trains the encoder too.
"""

from __future__ import annotations

import torch
from torch import nn


class OnlineProbe(nn.Module):
    """``LayerNorm(E) -> Linear(E, classes)`` on detached embeddings (by default).

    Args:
        emb_dim: Width ``E`` of the embedding.
        classes: Number of outputs.
        detach: Cut the gradient at ``emb`` (the probe measures without training the encoder);
            ``False``: the probe is the encoder's classification head.
    """

    def __init__(self, *, emb_dim: int, classes: int, detach: bool = True) -> None:
        super().__init__()
        if classes < 1:
            raise ValueError(f"probe classes must be >= 1, got {classes}")
        self.detach = detach
        self.net = nn.Sequential(nn.LayerNorm(emb_dim), nn.Linear(emb_dim, classes))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """``(B, E)`` embeddings to ``(B, classes)`` logits; no gradient reaches ``emb`` unless
        the probe was built with ``detach=False``."""
        return self.net(emb.detach() if self.detach else emb)

    def extra_repr(self) -> str:
        return "" if self.detach else "detach=False"
