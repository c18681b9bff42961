"""The JEPA predictor: a narrow ViT that fills in target positions from context tokens.

M. Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture", CVPR 2023, section 3. The context encoder's tokens are mapped to the predictor's
width and given the fixed 2-D sine-cosine embedding of their grid positions; for each target
block, one learned mask token per target patch, plus that patch's position embedding, is
appended; the transformer runs on ``context + block`` (one sequence per target block, so blocks
do not see each other) and the outputs at the mask tokens are mapped back to the encoder's width.
V-JEPA's predictor (Bardes et al., 2024) is the same on the tubelet grid ``(T', H', W')``, with
the 3-D sine-cosine embedding.
"""

from __future__ import annotations

import functools

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block, init_weights_vit_timm
from torch import nn

from levyjepa.core.arg_checks import check_positive_int


@functools.lru_cache(maxsize=8)
def sincos_grid(grid: tuple[int, ...], width: int) -> torch.Tensor:
    """Fixed sine-cosine position embedding ``(prod(grid), width)`` of a 2-D or 3-D grid in
    raster order (CPU, computed once per grid and width; not to be modified in place).

    Each of the ``n`` axes gets ``f = width // (2 n)`` frequencies (Vaswani et al., 2017, per
    axis, as MAE, I-JEPA and V-JEPA use): for position ``p`` and ``k < f``, ``sin(p w_k)`` and
    ``cos(p w_k)`` with ``w_k = 10000 ** (-k / f)``; axis by axis, sines then cosines; the
    ``width - 2 n f`` channels left over (a width that ``2 n`` does not divide) are zero.
    """
    n = len(grid)
    if width < 2 * n:
        raise ValueError(f"a {n}-D sin-cos embedding needs a width of at least {2 * n}, "
                         f"got {width}")
    f = width // (2 * n)
    freqs = 10000.0 ** (-torch.arange(f, dtype=torch.float64) / f)
    axes = torch.meshgrid(*(torch.arange(g, dtype=torch.float64) for g in grid), indexing="ij")
    parts = []
    for axis in axes:
        angles = axis.flatten()[:, None] * freqs[None]
        parts += [angles.sin(), angles.cos()]
    table = torch.cat(parts, 1)
    pad = width - table.shape[1]
    return torch.cat([table, table.new_zeros(table.shape[0], pad)], 1).float()


def sincos_2d(grid: tuple[int, int], width: int) -> torch.Tensor:
    """:func:`sincos_grid` of a 2-D grid, ``width`` divisible by 4 (I-JEPA's embedding)."""
    if width % 4:
        raise ValueError(f"the 2-D sin-cos embedding needs a width divisible by 4, got {width}")
    return sincos_grid(tuple(grid), width)


class JEPAPredictor(nn.Module):
    """Predict the encoder's tokens at target positions from the context tokens.

    Args:
        in_dim: The encoder's token width ``D``.
        width: The predictor's width (narrower than ``D`` in I-JEPA: 384 for a ViT-H/14).
        depth: Transformer blocks.
        heads: Attention heads (must divide ``width``).
        mlp_ratio: Hidden width of each block's MLP over ``width``.
    """

    def __init__(self, *, in_dim: int, width: int, depth: int, heads: int,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("width", width), ("depth", depth),
                            ("heads", heads)):
            check_positive_int(f"predictor {name}", value)
        if width % heads or width % 4:
            raise ValueError(f"predictor width={width} must be divisible by heads={heads} "
                             "and by 4 (its sin-cos position embedding)")
        self.width = width
        self.embed = nn.Linear(in_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.blocks = nn.Sequential(*(Block(width, heads, mlp_ratio=mlp_ratio, qkv_bias=True)
                                      for _ in range(depth)))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.out = nn.Linear(width, in_dim)
        trunc_normal_(self.mask_token, std=0.02)
        self.apply(init_weights_vit_timm)

    def forward(self, context: torch.Tensor, context_idx: torch.Tensor,
                target_idx: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Predictions at every target block's patches.

        Args:
            context: ``(B, K, D)`` context-encoder tokens.
            context_idx: ``(B, K)`` their raster indices on ``grid``.
            target_idx: ``(B, M, T)`` raster indices of the ``M`` target blocks.
            grid: The patch grid ``(H', W')``, or a video's tubelet grid ``(T', H', W')``.

        Returns:
            ``(B, M, T, D)``: block ``m``'s predictions, in the order of ``target_idx``.
        """
        b, k = context_idx.shape
        m = target_idx.shape[1]
        pos = sincos_grid(tuple(grid), self.width).to(context.device)
        ctx = self.embed(context) + pos[context_idx]  # (B, K, w)
        ctx = ctx.repeat_interleave(m, 0)  # (B*M, K, w): row b*M + j serves block j of image b
        queries = self.mask_token + pos[target_idx.flatten(0, 1)]  # (B*M, T, w)
        x = self.blocks(torch.cat([ctx, queries.to(ctx.dtype)], 1))
        return self.out(self.norm(x[:, k:])).unflatten(0, (b, m))
