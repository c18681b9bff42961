"""Heads shared by encoders: attention pooling to ``emb`` and the two projectors."""

from __future__ import annotations

import torch
from timm.layers import AttentionPool2d
from torch import nn
from torchvision.ops import MLP


class AttentionPoolHead(nn.Module):
    """Attention pooling of a token grid, then ``LayerNorm`` and a linear map to ``emb``.

    The seed experiments replace LeJEPA's class-token readout with this head so that the
    embedding the probe reads depends on the final patch tokens (docs/seed_experiments.md).

    Args:
        width: Token width ``D``.
        grid: Token grid ``(H', W')`` the positional embedding of the pool is sized for.
        emb_dim: Output width ``E``.
        heads: Attention heads of the pool (must divide ``width``).
    """

    def __init__(self, *, width: int, grid: tuple[int, int], emb_dim: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"pool_heads={heads} must divide the token width {width}")
        self.pool = AttentionPool2d(width, feat_size=grid, num_heads=heads, head_dim=width // heads)
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, emb_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, H', W', D)`` tokens to ``(B, E)`` embeddings."""
        pooled = self.pool(tokens.permute(0, 3, 1, 2))
        return self.linear(self.norm(pooled))


def projector(in_dim: int, hidden: int, out_dim: int, norm: type[nn.Module]) -> MLP:
    """``in -> hidden -> hidden -> out`` MLP with ``norm`` and ReLU between layers.

    ``BatchNorm1d`` for the pooled projector (rows are samples), ``LayerNorm`` for the token
    projector (applied to each token independently).
    """
    return MLP(in_dim, [hidden, hidden, out_dim], norm_layer=norm)
