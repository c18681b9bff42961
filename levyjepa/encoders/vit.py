"""Image encoder: any timm Vision Transformer with the seed's pooling and projector heads.

Reference: A. Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
Recognition at Scale", ICLR 2021. The heads follow the Lévy-JEPA seed experiments
(docs/seed_experiments.md): attention pooling over the patch tokens (class token excluded) to
``emb``, a
BatchNorm MLP projector to ``proj`` and a LayerNorm MLP projector applied to every token to
``tokens_proj``.
"""

from __future__ import annotations

import difflib
from typing import Optional

import timm
import torch

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import ENCODERS
from levyjepa.encoders.field_encoder import POOLS, FieldEncoder, masked_vit_tokens


@ENCODERS.register("vit", runtime=("with_tokens_proj", "with_proj"))
class ViTEncoder(FieldEncoder):
    """A timm ViT backbone (never pretrained) with pooling and projector heads.

    With the defaults this is the seed's encoder: ``vit_small_patch8_224`` at 128 px (a 16x16
    token grid of width 384), 32,669,216 trainable parameters. ``patch_size``, ``embed_dim``,
    ``depth`` and ``num_heads`` override the named architecture, which is how tests and the
    quickstart build tiny models.

    Args:
        arch: timm model name (a ``vit_*`` model with a 2-D patch grid).
        img_size: Input side in pixels.
        patch_size: Override of the architecture's patch size.
        embed_dim: Override of the token width ``D``.
        depth: Override of the number of blocks.
        num_heads: Override of the number of attention heads.
        in_chans: Input channels.
        drop_path: Stochastic depth rate of the backbone.
        emb_dim: Width ``E`` of the pooled embedding (with ``pool: mean``, the token width).
        pool: ``attention`` (the seed's attention-pool head to ``emb``) or ``mean`` (``emb``
            is the mean of the patch tokens, no parameters: I-JEPA's evaluation readout).
        pool_heads: Heads of the attention pool.
        proj_hidden: Hidden width of both projectors.
        tokens_proj_hidden: Hidden width of the token projector alone (``None``: ``proj_hidden``,
            as in the seed). It runs on every token, so on small CPU runs it dominates the
            step unless it is narrower than the pooled projector.
        proj_dim: Output width ``K`` of both projectors.
        with_tokens_proj: Build and run the token projector (set by the runner: only when the
            method or a prior of the recipe's ``priors`` reads ``tokens_proj``).
        with_proj: Build and run the pooled projector (set by the runner: a method that never
            reads ``proj``, as I-JEPA, leaves it out, so no parameter goes unused).
    """

    def __init__(
        self,
        *,
        arch: str = "vit_small_patch8_224",
        img_size: int = 128,
        patch_size: Optional[int] = None,
        embed_dim: Optional[int] = None,
        depth: Optional[int] = None,
        num_heads: Optional[int] = None,
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
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if tokens_proj_hidden is not None and tokens_proj_hidden < 1:
            raise ValueError(f"tokens_proj_hidden must be >= 1, got {tokens_proj_hidden}")
        overrides = {
            k: v
            for k, v in dict(
                patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads
            ).items()
            if v is not None
        }
        if not timm.is_model(arch) or not arch.startswith(("vit_", "deit")):
            known = timm.list_models("vit_*")
            close = difflib.get_close_matches(arch, known, n=3)
            raise ConfigError(
                f"encoder 'vit': unknown timm ViT arch '{arch}'"
                + (f"; closest: {', '.join(close)}" if close else "")
            )
        # what timm.create_model(arch, **model_args) needs to rebuild the backbone (export)
        self.arch = arch
        self.model_args = dict(img_size=img_size, in_chans=in_chans, num_classes=0,
                               drop_path_rate=drop_path, dynamic_img_size=True, **overrides)
        # dynamic_img_size: other resolutions get their position embeddings interpolated
        self.backbone = timm.create_model(arch, pretrained=False, **self.model_args)
        self.timm_exportable = True
        grid = tuple(self.backbone.patch_embed.grid_size)
        self.build_heads(width=self.backbone.embed_dim, grid=(int(grid[0]), int(grid[1])),
                         emb_dim=emb_dim, pool=pool, pool_heads=pool_heads,
                         proj_hidden=proj_hidden, tokens_proj_hidden=tokens_proj_hidden,
                         proj_dim=proj_dim, with_proj=with_proj,
                         with_tokens_proj=with_tokens_proj)

    def grid_of(self, size: tuple[int, int]) -> tuple[int, int]:
        """The token grid of ``(H, W)`` inputs (``self.grid`` at ``img_size``)."""
        patch = self.backbone.patch_embed.patch_size
        return int(size[0]) // patch[0], int(size[1]) // patch[1]

    def forward_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The last-layer patch-token field ``(B, H', W', D)`` of ``(B, C, H, W)`` images (after
        the backbone's final norm; prefix tokens dropped)."""
        feats = self.backbone.forward_features(images)
        grid = self.grid_of(images.shape[-2:])
        return feats[:, self.backbone.num_prefix_tokens:].unflatten(1, grid)

    def forward_masked(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The last-layer tokens of the kept patches only, the others dropped before the blocks.

        I-JEPA's context encoder (Assran et al., CVPR 2023, section 3): patches are embedded and
        given their position embedding on the full grid, then only the ``K`` kept ones (and the
        backbone's prefix tokens, a class token) enter the transformer, so its cost falls with
        the number kept. The result equals the full forward restricted to the kept tokens when
        attention in the full forward may only look at kept and prefix tokens
        (tests/test_masked_forward.py checks this).

        Args:
            images: ``(B, C, H, W)``.
            keep: ``(B, K)`` int64 raster indices (``row * W' + col``) of the kept patches.

        Returns:
            ``(B, K, D)`` tokens, in the order of ``keep``.
        """
        return masked_vit_tokens(self.backbone, images, keep)
