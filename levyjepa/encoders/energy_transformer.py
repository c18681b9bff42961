"""Image encoder: an Energy Transformer on patch tokens, with the seed's heads.

B. Hoover et al., "Energy Transformer", NeurIPS 2023 (arXiv:2302.07253). Patches are embedded
by a convolution of stride ``patch_size`` and given a fixed 2-D sine-cosine position embedding
(as I-JEPA's; no parameters, so every input size gets its own without interpolation); one
:class:`~levyjepa.encoders.energy_block.EnergyBlock` then lowers its energy over the tokens for
``n_iters`` steps with shared weights, and a final ``LayerNorm`` gives the field. The heads are
those of every image encoder (:class:`~levyjepa.encoders.field_encoder.FieldEncoder`): pooling
to ``emb``, the BatchNorm MLP projector to ``proj``, the token projector to ``tokens_proj``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from levyjepa.core.arg_checks import check_positive_int
from levyjepa.core.registry import ENCODERS
from levyjepa.encoders.energy_block import EnergyBlock
from levyjepa.encoders.field_encoder import POOLS, FieldEncoder


@ENCODERS.register("energy_transformer", runtime=("with_tokens_proj", "with_proj"))
class EnergyTransformerEncoder(FieldEncoder):
    """Patch embedding, one Energy Transformer block iterated ``n_iters`` times, heads.

    The defaults follow the seed's ViT where the two share a meaning (128 px, patch 8, width
    384, 6 heads of width 64) and the paper otherwise (``4 D`` Hopfield memories, 12 steps of
    size 0.1, ``beta = 1 / sqrt(head_dim)``).

    Args:
        img_size: Input side in pixels (sets ``grid``, the attention pool's grid).
        patch_size: Patch side (the stride of the embedding convolution).
        in_chans: Input channels.
        embed_dim: Token width ``D`` (at least 4: the sine-cosine embedding).
        num_heads: Heads ``H`` of the attention energy.
        head_dim: Width ``Y`` of each head's keys and queries (``None``: ``D / H``).
        memories: Hopfield memories ``M`` (``None``: ``4 D``).
        n_iters: Descent steps of the block (its weights shared by all).
        alpha: Step size of ``x <- x - alpha dE/dg``.
        beta: Inverse temperature of the attention energy (``None``: ``1 / sqrt(Y)``).
        emb_dim: Width ``E`` of the pooled embedding (with ``pool: mean``, ``D``).
        pool: ``attention`` (the seed's attention-pool head) or ``mean`` (I-JEPA's readout).
        pool_heads: Heads of the attention pool.
        proj_hidden: Hidden width of both projectors.
        tokens_proj_hidden: Hidden width of the token projector alone (``None``:
            ``proj_hidden``).
        proj_dim: Output width ``K`` of both projectors.
        with_tokens_proj: Build and run the token projector (set by the runner).
        with_proj: Build and run the pooled projector (set by the runner).
    """

    def __init__(
        self,
        *,
        img_size: int = 128,
        patch_size: int = 8,
        in_chans: int = 3,
        embed_dim: int = 384,
        num_heads: int = 6,
        head_dim: Optional[int] = None,
        memories: Optional[int] = None,
        n_iters: int = 12,
        alpha: float = 0.1,
        beta: Optional[float] = None,
        emb_dim: int = 512,
        pool: str = "attention",
        pool_heads: int = 6,
        proj_hidden: int = 2048,
        tokens_proj_hidden: Optional[int] = None,
        proj_dim: int = 16,
        with_tokens_proj: bool = True,
        with_proj: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("img_size", img_size), ("patch_size", patch_size),
                            ("in_chans", in_chans), ("embed_dim", embed_dim),
                            ("num_heads", num_heads)):
            check_positive_int(name, value)
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if patch_size > img_size:
            raise ValueError(f"patch_size={patch_size} must be at most img_size={img_size}")
        if embed_dim < 4:
            raise ValueError(f"embed_dim must be >= 4 (2-D sin-cos embedding), got {embed_dim}")
        if head_dim is None:
            if embed_dim % num_heads:
                raise ValueError(f"num_heads={num_heads} must divide embed_dim={embed_dim} "
                                 "when head_dim is null")
            head_dim = embed_dim // num_heads
        self.patch_size = int(patch_size)
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.block = EnergyBlock(width=embed_dim, heads=num_heads, head_dim=head_dim,
                                 memories=memories if memories is not None else 4 * embed_dim,
                                 n_iters=n_iters, alpha=alpha, beta=beta)
        self.norm = nn.LayerNorm(embed_dim)
        self.build_heads(width=embed_dim, grid=self.grid_of((img_size, img_size)),
                         emb_dim=emb_dim, pool=pool, pool_heads=pool_heads,
                         proj_hidden=proj_hidden, tokens_proj_hidden=tokens_proj_hidden,
                         proj_dim=proj_dim, with_proj=with_proj,
                         with_tokens_proj=with_tokens_proj)

    def grid_of(self, size: tuple[int, int]) -> tuple[int, int]:
        """The token grid of ``(H, W)`` inputs (the convolution drops a partial last patch)."""
        return int(size[0]) // self.patch_size, int(size[1]) // self.patch_size

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch tokens with their position embedding, ``(B, H'W', D)`` in raster order.

        The tokens are at least float32 (a bf16 convolution's output is promoted by the
        float32 position embedding), so the descent accumulates in full precision.
        """
        # imported here: levyjepa.methods imports the encoders package, not the reverse
        from levyjepa.methods.jepa_predictor import sincos_grid

        tokens = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, H'W', D)
        grid = self.grid_of(images.shape[-2:])
        pos = sincos_grid(grid, tokens.shape[-1]).to(
            tokens.device, torch.promote_types(tokens.dtype, torch.float32))
        return (tokens + pos).contiguous()

    def forward_tokens(self, images: torch.Tensor, *,
                       attend: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The field ``(B, H', W', D)`` of ``(B, C, H, W)`` images (after the final norm).

        Args:
            images: ``(B, C, H, W)``.
            attend: ``(B, H'W')`` bool, the tokens that take part in the attention energy
                (``None``: all). The others still descend the Hopfield energy on their own.
        """
        x = self.norm(self.block(self.embed(images), attend))
        return x.unflatten(1, self.grid_of(images.shape[-2:]))

    def forward_masked(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The tokens of the kept patches only, the others dropped before the block.

        I-JEPA's context encoder (Assran et al., CVPR 2023, section 3): patches are embedded
        with their position on the full grid, then only the ``K`` kept ones descend the energy.
        The attention energy couples tokens, so this equals the full forward restricted to the
        kept tokens when the full forward's attention energy is over the kept tokens alone
        (``forward_tokens(images, attend=kept)``): dropped tokens are then neither keys nor
        queries, and the Hopfield energy is a sum of one term per token.

        Args:
            images: ``(B, C, H, W)``.
            keep: ``(B, K)`` int64 raster indices (``row * W' + col``) of the kept patches.

        Returns:
            ``(B, K, D)`` tokens, in the order of ``keep``.
        """
        x = self.embed(images)
        kept = x.gather(1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return self.norm(self.block(kept))

    def energies(self, images: torch.Tensor) -> torch.Tensor:
        """The block's energy along the descent on ``(B, C, H, W)`` images, ``(B, n_iters +
        1)``: before the first step, then after each."""
        return self.block.energies(self.embed(images))
