"""The heads every image encoder with a 2-D token field shares, and its forward.

An image encoder here is a backbone that maps ``(B, C, H, W)`` images to a field of tokens
``(B, H', W', D)`` (a ViT's patch tokens, a ConvNet's feature map) and the seed's heads on top
(docs/seed_experiments.md): pooling to ``emb`` (attention pooling or the plain mean), a BatchNorm
MLP projector to ``proj`` and a LayerNorm MLP projector applied to every token to
``tokens_proj``, the field the Lévy priors read. A subclass builds its backbone, calls
:meth:`FieldEncoder.build_heads` and implements :meth:`FieldEncoder.forward_tokens`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from levyjepa.encoders.activation_checkpointing import run_blocks
from levyjepa.encoders.heads import AttentionPoolHead, projector
from levyjepa.encoders.output import EncoderOutput

POOLS = ("attention", "mean")


class FieldEncoder(nn.Module):
    """Base class: a token field, pooled and projected (see the module docstring).

    Attributes set by :meth:`build_heads`: ``width`` (token width ``D``), ``grid`` (the field's
    ``(H', W')`` at the training size), ``emb_dim``, ``proj_dim``, ``pool``, and the modules
    ``head`` (``None`` with ``pool: mean``), ``proj`` and ``tokens_proj`` (``None`` when not
    built).
    """

    width: int
    grid: tuple[int, int]
    emb_dim: int
    proj_dim: int
    pool: str

    def build_heads(self, *, width: int, grid: tuple[int, int], emb_dim: int, pool: str,
                    pool_heads: int, proj_hidden: int, tokens_proj_hidden: Optional[int],
                    proj_dim: int, with_proj: bool, with_tokens_proj: bool) -> None:
        """Build the pooling head and the two projectors, in this order (the order fixes which
        random numbers each one's initialisation draws).

        Raises:
            ValueError: for an unknown ``pool``, a ``tokens_proj_hidden`` below 1, or
                ``pool: mean`` with an ``emb_dim`` other than the token width.
        """
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if tokens_proj_hidden is not None and tokens_proj_hidden < 1:
            raise ValueError(f"tokens_proj_hidden must be >= 1, got {tokens_proj_hidden}")
        if pool == "mean" and emb_dim != width:
            raise ValueError(f"emb_dim={emb_dim} must equal the token width embed_dim={width} "
                             "with pool: mean")
        self.grid = (int(grid[0]), int(grid[1]))
        self.width = width
        self.emb_dim = emb_dim
        self.proj_dim = proj_dim
        self.pool = pool
        attach_heads(self, width=width, pool_grid=self.grid, emb_dim=emb_dim, pool=pool,
                     pool_heads=pool_heads, proj_hidden=proj_hidden,
                     tokens_proj_hidden=tokens_proj_hidden, proj_dim=proj_dim,
                     with_proj=with_proj, with_tokens_proj=with_tokens_proj)

    def forward(self, views: torch.Tensor) -> EncoderOutput:
        """Encode ``(N, V, C, H, W)`` views; see :class:`EncoderOutput` for the shapes.

        Views of another side than the training size (LeJEPA's local views) give a smaller
        field; the attention pool resamples its position embedding to it (bicubic).
        """
        if views.dim() != 5:
            raise ValueError(f"{type(self).__name__} expects (N, V, C, H, W) views, got shape "
                             f"{tuple(views.shape)}")
        n, v = views.shape[:2]
        tokens = self.forward_tokens(views.flatten(0, 1))
        emb = self.head(tokens) if self.head is not None else tokens.mean((1, 2))
        proj = (self.proj(emb).unflatten(0, (n, v)).transpose(0, 1)
                if self.proj is not None else None)
        tokens_proj = self.tokens_proj(tokens) if self.tokens_proj is not None else None
        return EncoderOutput(emb=emb, proj=proj, tokens=tokens, tokens_proj=tokens_proj)

    def forward_tokens(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """The field ``(B, H', W', D)`` of ``(B, C, H, W)`` images."""
        raise NotImplementedError

    def set_activation_checkpointing(self, enable: bool) -> None:
        """Checkpoint the timm backbone's blocks (``trainer.activation_checkpointing``;
        :mod:`levyjepa.encoders.activation_checkpointing`).

        Raises:
            ValueError: one line, when the backbone has no checkpointing of its own.
        """
        backbone = getattr(self, "backbone", None)
        name = getattr(self, "arch", type(self).__name__)
        setter = getattr(backbone, "set_grad_checkpointing", None)
        if setter is None:
            raise ValueError(f"encoder '{name}' has no activation checkpointing")
        try:
            setter(enable)
        except (AssertionError, NotImplementedError) as err:
            raise ValueError(f"timm model '{name}' has no activation checkpointing "
                             f"({str(err) or type(err).__name__})") from None


def attach_heads(module: nn.Module, *, width: int, pool_grid: tuple[int, int], emb_dim: int,
                 pool: str, pool_heads: int, proj_hidden: int,
                 tokens_proj_hidden: Optional[int], proj_dim: int, with_proj: bool,
                 with_tokens_proj: bool) -> None:
    """Set ``module.head`` (the attention pool over a ``pool_grid`` of tokens, or ``None`` with
    ``pool: mean``), ``module.proj`` and ``module.tokens_proj``, built in this order (the order
    fixes which random numbers each initialisation draws). A clip encoder passes its grid with
    time folded into the height axis."""
    module.head = (AttentionPoolHead(width=width, grid=pool_grid, emb_dim=emb_dim,
                                     heads=pool_heads) if pool == "attention" else None)
    module.proj = (projector(emb_dim, proj_hidden, proj_dim, nn.BatchNorm1d)
                   if with_proj else None)
    module.tokens_proj = (
        projector(width, tokens_proj_hidden or proj_hidden, proj_dim, nn.LayerNorm)
        if with_tokens_proj else None
    )


def masked_vit_tokens(backbone: nn.Module, images: torch.Tensor,
                      keep: torch.Tensor) -> torch.Tensor:
    """The last-layer tokens of the kept patches only, the others dropped before the blocks.

    I-JEPA's context encoder (Assran et al., CVPR 2023, section 3) on a timm
    ``VisionTransformer``: patches are embedded and given their position embedding on the full
    grid, then only the ``K`` kept ones (and the backbone's prefix tokens, a class token) enter
    the transformer, so its cost falls with the number kept.

    Args:
        backbone: A timm ``VisionTransformer``.
        images: ``(B, C, H, W)``.
        keep: ``(B, K)`` int64 raster indices (``row * W' + col``) of the kept patches.

    Returns:
        ``(B, K, D)`` tokens, in the order of ``keep``.
    """
    bb = backbone
    x = bb.norm_pre(bb.patch_drop(bb._pos_embed(bb.patch_embed(images))))
    prefix = bb.num_prefix_tokens
    patches = x[:, prefix:]
    kept = patches.gather(1, keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
    x = run_blocks(bb.blocks, torch.cat([x[:, :prefix], kept], 1),
                   checkpointed=bool(getattr(bb, "grad_checkpointing", False)))
    return bb.norm(x)[:, prefix:]
