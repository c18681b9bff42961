"""Attention-map pictures: where the pooling head and the last transformer block look.

The seed's evaluation (seed ``004``) draws, for a few images, the attention of the readout over
the image. Two maps are computed here, each ``(B, heads, H', W')`` over the patch grid:

- **the pooling head's** (encoders with ``pool: attention``, any backbone): the attention pool
  (:class:`levyjepa.encoders.heads.AttentionPoolHead`, timm's ``AttentionPool2d``) prepends one
  query token, the mean of the field, adds its position embedding and attends from it to every
  token: ``a_h = softmax(q_h k_h^T / sqrt(d_h))`` over the prefix and the ``H' W'`` patches. The
  map is the weight ``a_h`` on each patch (the prefix's own weight is left out, so a head's map
  sums to ``1 - a_h[prefix]``). ``emb`` is a linear function of ``sum_j a_hj v_hj``, so this is
  what the embedding the probes read is made of.
- **the last block's** (timm ViT backbones: ``vit`` and ``timm`` with a ViT): the attention
  of the last block, computed from its input as the block does (``qkv``, the optional q/k
  norms, the scale). With a class token the map is the class token's attention to the patches
  (M. Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
  figure 1); without one, the mean over the patch queries of the attention each patch receives.

An encoder without a pooling head or without timm ViT blocks gets no map of that kind (``None``);
clips get none (their pooling folds time into the grid). Both maps are recomputed from the
modules' weights and inputs, and tests/test_attention_maps.py checks each against the module's
own output (the attention-weighted values, projected, equal what the module returns).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from matplotlib.figure import Figure
from timm.layers import resample_abs_pos_embed
from torch import nn

from levyjepa.diagnostics.image_grid import finish_grid, image_grid
from levyjepa.encoders.heads import AttentionPoolHead

__all__ = ["attention_maps", "last_block_attention", "plot_attention", "pool_attention"]


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(B, N, heads * d)`` to ``(B, heads, N, d)``."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


@torch.no_grad()
def pool_attention(encoder: nn.Module, tokens: torch.Tensor) -> Optional[torch.Tensor]:
    """The attention pool's weights on each patch, ``(B, heads, H', W')``, or ``None``.

    Args:
        encoder: An encoder whose ``head`` may be an :class:`AttentionPoolHead`.
        tokens: Its field ``(B, H', W', D)`` of the images (``forward_tokens``).
    """
    head = getattr(encoder, "head", None)
    if not isinstance(head, AttentionPoolHead) or tokens.dim() != 4:
        return None
    pool = head.pool
    b, h, w, _ = tokens.shape
    x = tokens.flatten(1, 2)
    x = torch.cat([x.mean(1, keepdim=True), x], 1)  # the query token: the field's mean
    x = x + resample_abs_pos_embed(pool.pos_embed.unsqueeze(0), (h, w),
                                   old_size=pool.feat_size, num_prefix_tokens=1)
    if pool.qkv is not None:
        q, k, _ = pool.qkv(x).chunk(3, -1)
    else:
        q, k = pool.q(x), pool.k(x)
    q, k = _heads(q[:, :1], pool.num_heads), _heads(k, pool.num_heads)
    weights = ((q * pool.scale) @ k.transpose(-2, -1)).softmax(-1)  # (B, heads, 1, 1 + HW)
    return weights[:, :, 0, 1:].unflatten(-1, (h, w))


@torch.no_grad()
def last_block_attention(encoder: nn.Module, images: torch.Tensor) -> Optional[torch.Tensor]:
    """The last ViT block's attention on each patch, ``(B, heads, H', W')``, or ``None``.

    Args:
        encoder: An encoder with a timm ``VisionTransformer`` as ``backbone``.
        images: ``(B, C, H, W)`` on the encoder's device.
    """
    backbone = getattr(encoder, "backbone", None)
    blocks = getattr(backbone, "blocks", None)
    if blocks is None or not len(blocks) or images.dim() != 4:
        return None
    attn = getattr(blocks[-1], "attn", None)
    if attn is None or not isinstance(getattr(attn, "qkv", None), nn.Linear):
        return None
    seen: list[torch.Tensor] = []
    hook = attn.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        encoder.forward_tokens(images)
    finally:
        hook.remove()
    x = seen[-1]
    q, k, _ = attn.qkv(x).unflatten(-1, (3, attn.num_heads, -1)).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(q), attn.k_norm(k)
    weights = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(-1)  # (B, heads, N, N)
    prefix = int(getattr(backbone, "num_prefix_tokens", 0))
    grid = encoder.grid_of(images.shape[-2:])
    if prefix:
        patches = weights[:, :, 0, prefix:]  # the class token's query
    else:
        patches = weights.mean(2)
    return patches.unflatten(-1, grid)


@torch.no_grad()
def attention_maps(encoder: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every map of the module docstring the encoder has, float32 on CPU, in eval mode.

    Args:
        encoder: A registered image encoder.
        images: ``(B, C, H, W)``.

    Returns:
        ``{"pooling head": ..., "last block": ...}`` (the ones that exist), each ``(B, heads,
        H', W')``.
    """
    if images.dim() != 4:
        return {}
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    try:
        images = images.to(device)
        maps = {"pooling head": pool_attention(encoder, encoder.forward_tokens(images)),
                "last block": last_block_attention(encoder, images)}
    finally:
        encoder.train(was_training)
    return {k: v.float().cpu() for k, v in maps.items() if v is not None}


def _gray(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` as a min-max scaled grey image ``(H, W)``."""
    x = image.float().mean(0).numpy()
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def plot_attention(inputs: torch.Tensor, maps: dict[str, torch.Tensor], *, title: str = "",
                   rows: int = 4) -> Figure:
    """Each image, then each map (mean over heads) over the image in grey.

    Args:
        inputs: ``(B, C, H, W)``.
        maps: ``name -> (B, heads, H', W')`` (:func:`attention_maps`).
        title: Figure title.
        rows: Number of images shown.
    """
    rows = min(rows, len(inputs))
    cols = 1 + len(maps)
    fig, axes = image_grid(rows, cols)
    for r in range(rows):
        gray = _gray(inputs[r])
        size = gray.shape
        axes[r, 0].imshow(gray, cmap="gray", vmin=0, vmax=1)
        for c, (name, m) in enumerate(maps.items(), start=1):
            mean = m[r].mean(0).numpy()
            axes[r, c].imshow(gray, cmap="gray", vmin=0, vmax=1)
            axes[r, c].imshow(mean, cmap="inferno", alpha=0.6, interpolation="nearest",
                              extent=(-0.5, size[1] - 0.5, size[0] - 0.5, -0.5))
            if r == 0:
                axes[r, c].set_title(f"{name} ({m.shape[1]} heads, mean)", fontsize=9)
        if r == 0:
            axes[r, 0].set_title("input", fontsize=9)
    return finish_grid(fig, axes, title)
