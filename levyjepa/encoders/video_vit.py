"""Video encoder: a spatiotemporal ViT with joint space-time attention, and the seed's heads.

The backbone is ViViT's unfactorised model (A. Arnab et al., "ViViT: A Video Vision
Transformer", ICCV 2021, model 1, "spatio-temporal attention"), the VideoMAE backbone (Z. Tong
et al., "VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised Video
Pre-Training", NeurIPS 2022): tubelet embedding (``t x p x p``, default ``2 x 16 x 16``), a
learned positional embedding over the token grid ``(T', H', W')``, and standard pre-norm
Transformer blocks (timm's ``Block``) in which every token attends to every other token of the
clip, then a final LayerNorm. There is no class token.

The heads are those of the image encoder (docs/seed_experiments.md): attention pooling over all
tokens to
``emb`` (timm's ``AttentionPool2d`` over the grid with time folded into the height axis, which
is exact because its positional table is a free parameter per token), a BatchNorm MLP projector
to ``proj`` and a LayerNorm MLP projector per token to ``tokens_proj``, the field the 2D + time
Lévy prior (``levy3d``) reads.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block, init_weights_vit_timm
from torch import nn

from levyjepa.core.arg_checks import check_positive_int
from levyjepa.core.registry import ENCODERS
from levyjepa.encoders.activation_checkpointing import run_blocks
from levyjepa.encoders.field_encoder import attach_heads
from levyjepa.encoders.output import EncoderOutput
from levyjepa.encoders.tubelet import TubeletEmbed

POOLS = ("attention", "mean")

ARCHS: dict[str, tuple[int, int, int]] = {
    "vit_tiny": (192, 12, 3),
    "vit_small": (384, 12, 6),
    "vit_base": (768, 12, 12),
}
"""Named sizes: token width ``D``, depth, attention heads (as the image ViTs of DeiT / ViT)."""


@ENCODERS.register("video_vit", runtime=("with_tokens_proj", "with_proj"))
class VideoViTEncoder(nn.Module):
    """Spatiotemporal ViT (never pretrained) with pooling and projector heads.

    ``embed_dim``, ``depth`` and ``num_heads`` override the named size, which is how tests build
    tiny models. The token grid is ``(T', H', W') = (num_frames / tubelet_size, img_size /
    patch_size, img_size / patch_size)``; at the defaults (ViT-S, 16 frames of 112 px)
    ``(8, 8, 8)``.

    Args:
        arch: Named size: ``vit_tiny``, ``vit_small`` or ``vit_base``.
        img_size: Frame side in pixels.
        num_frames: Frames per clip ``T``.
        patch_size: Spatial side ``p`` of a tubelet.
        tubelet_size: Temporal length ``t`` of a tubelet.
        embed_dim: Override of the token width ``D``.
        depth: Override of the number of blocks.
        num_heads: Override of the number of attention heads.
        mlp_ratio: Hidden width of the blocks' MLP over ``D``.
        in_chans: Input channels.
        drop_path: Stochastic depth rate of the last block (linear from 0 over the blocks).
        emb_dim: Width ``E`` of the pooled embedding (with ``pool: mean``, the token width).
        pool: ``attention`` (the seed's attention-pool head to ``emb``) or ``mean`` (``emb`` is
            the mean of all tokens, no parameters: the readout of V-JEPA's and HJEPA's recipes,
            which train no pooling head).
        pool_heads: Heads of the attention pool.
        proj_hidden: Hidden width of both projectors.
        tokens_proj_hidden: Hidden width of the token projector alone (``None``: ``proj_hidden``,
            as in the seed). It runs on every token, so on small CPU runs it dominates the
            step unless it is narrower than the pooled projector.
        proj_dim: Output width ``K`` of both projectors.
        with_tokens_proj: Build and run the token projector (set by the runner).
        with_proj: Build and run the pooled projector (set by the runner; off for methods
            that never read ``proj``).

    Raises:
        ValueError: naming the invalid parameter and its valid values.
    """

    def __init__(
        self,
        *,
        arch: str = "vit_small",
        img_size: int = 128,
        num_frames: int = 16,
        patch_size: int = 16,
        tubelet_size: int = 2,
        embed_dim: Optional[int] = None,
        depth: Optional[int] = None,
        num_heads: Optional[int] = None,
        mlp_ratio: float = 4.0,
        in_chans: int = 3,
        drop_path: float = 0.1,
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
        self.activation_checkpointing = False  # trainer.activation_checkpointing
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {arch!r}")
        width, blocks, heads = ARCHS[arch]
        width = width if embed_dim is None else embed_dim
        blocks = blocks if depth is None else depth
        heads = heads if num_heads is None else num_heads
        for name, value in (("embed_dim", width), ("depth", blocks), ("num_heads", heads),
                            ("emb_dim", emb_dim), ("pool_heads", pool_heads),
                            ("proj_hidden", proj_hidden), ("proj_dim", proj_dim),
                            ("tokens_proj_hidden", tokens_proj_hidden or proj_hidden)):
            check_positive_int(name, value)
        if width % heads:
            raise ValueError(f"num_heads={heads} must divide embed_dim={width}")
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path}")
        if not mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio}")
        self.patch_embed = TubeletEmbed(num_frames=num_frames, img_size=img_size,
                                        patch_size=patch_size, tubelet_size=tubelet_size,
                                        in_chans=in_chans, embed_dim=width)
        self.grid: tuple[int, int, int] = self.patch_embed.grid
        self.pos_embed = nn.Parameter(torch.zeros(1, *self.grid, width))
        rates = [drop_path * i / max(1, blocks - 1) for i in range(blocks)]
        self.blocks = nn.Sequential(*(
            Block(width, heads, mlp_ratio=mlp_ratio, qkv_bias=True, drop_path=rate)
            for rate in rates
        ))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        trunc_normal_(self.pos_embed, std=0.02)
        self.blocks.apply(init_weights_vit_timm)
        if pool == "mean" and emb_dim != width:
            raise ValueError(f"emb_dim={emb_dim} must equal the token width embed_dim={width} "
                             "with pool: mean")
        self.width, self.emb_dim, self.proj_dim, self.pool = width, emb_dim, proj_dim, pool
        t, h, w = self.grid
        attach_heads(self, width=width, pool_grid=(t * h, w), emb_dim=emb_dim, pool=pool,
                     pool_heads=pool_heads, proj_hidden=proj_hidden,
                     tokens_proj_hidden=tokens_proj_hidden, proj_dim=proj_dim,
                     with_proj=with_proj, with_tokens_proj=with_tokens_proj)

    def grid_of(self, size: tuple[int, int]) -> tuple[int, int, int]:
        """The token grid ``(T', H', W')`` of clips with ``(H, W)`` frames."""
        patch = self.patch_embed.proj.kernel_size[1]
        return self.grid[0], int(size[0]) // patch, int(size[1]) // patch

    def _embedded(self, clips: torch.Tensor) -> torch.Tensor:
        """Tubelet tokens plus position embedding, ``(B, T', H', W', D)``."""
        x = self.patch_embed(clips)
        t, h, w = x.shape[1:4]
        pos = self.pos_embed
        if (t, h, w) != self.grid:  # another frame side: the embedding resampled to its grid
            pos = F.interpolate(pos.permute(0, 4, 1, 2, 3), size=(t, h, w), mode="trilinear",
                                align_corners=False).permute(0, 2, 3, 4, 1)
        return x + pos

    def forward_tokens(self, clips: torch.Tensor) -> torch.Tensor:
        """Backbone only: ``(B, C, T, H, W)`` clips to tokens ``(B, T', H', W', D)``."""
        x = self._embedded(clips)
        b, t, h, w, d = x.shape
        x = run_blocks(self.blocks, x.reshape(b, t * h * w, d),
                       checkpointed=self.activation_checkpointing)
        return self.norm(x).reshape(b, t, h, w, d)

    def forward_masked(self, clips: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The last-layer tokens of the kept tubelets only, the others dropped before the blocks.

        V-JEPA's context encoder (Bardes et al., "Revisiting Feature Prediction for Learning
        Visual Representations from Video", 2024): tubelets are embedded and given their
        position embedding on the full ``(T', H', W')`` grid, then only the ``K`` kept ones
        enter the transformer, so its cost falls with the number kept. Equal to the full
        forward restricted to the kept tokens when attention there may only look at kept
        tokens (tests/test_video_methods.py checks this).

        Args:
            clips: ``(B, C, T, H, W)``.
            keep: ``(B, K)`` int64 raster indices (``(t * H' + h) * W' + w``) of kept tubelets.

        Returns:
            ``(B, K, D)`` tokens, in the order of ``keep``.
        """
        x = self._embedded(clips).flatten(1, 3)
        kept = x.gather(1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return self.norm(run_blocks(self.blocks, kept,
                                    checkpointed=self.activation_checkpointing))

    def set_activation_checkpointing(self, enable: bool) -> None:
        """Checkpoint every block in training forwards (``trainer.activation_checkpointing``;
        :mod:`levyjepa.encoders.activation_checkpointing`)."""
        self.activation_checkpointing = bool(enable)

    def forward(self, views: torch.Tensor) -> EncoderOutput:
        """Encode ``(N, V, C, T, H, W)`` views; see :class:`EncoderOutput` for the shapes.

        Returns:
            ``emb`` ``(N*V, E)``, ``proj`` ``(V, N, K)``, ``tokens`` ``(N*V, T', H', W', D)``
            and ``tokens_proj`` ``(N*V, T', H', W', K)`` (``None`` without the projector).
        """
        if views.dim() != 6:
            raise ValueError(f"video_vit expects (N, V, C, T, H, W) views, got shape "
                             f"{tuple(views.shape)}")
        n, v = views.shape[:2]
        tokens = self.forward_tokens(views.flatten(0, 1))
        emb = (self.head(tokens.flatten(1, 2))  # (B, T'*H', W', D): time folded into height
               if self.head is not None else tokens.mean((1, 2, 3)))
        proj = (self.proj(emb).unflatten(0, (n, v)).transpose(0, 1)
                if self.proj is not None else None)
        tokens_proj = self.tokens_proj(tokens) if self.tokens_proj is not None else None
        return EncoderOutput(emb=emb, proj=proj, tokens=tokens, tokens_proj=tokens_proj)
