"""I-JEPA's multi-block masks on a patch grid (groundwork of the ``ijepa`` method).

M. Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture", CVPR 2023, section 3: for each image, ``targets`` blocks of scale 0.15-0.2 of the
patches and aspect ratio 0.75-1.5 are the patches to predict, and one context block of scale
0.85-1.0 (aspect 1) with every target patch removed is what the context encoder sees.

Drawing, for a batch of ``B`` images on an ``H' x W'`` grid:

* the target blocks' side lengths are drawn once per batch and shared by the ``M`` blocks, and
  the context block's likewise (as I-JEPA does, so every target block of every image has the
  same number of patches): scale ``s`` and aspect ``a = h / w``, both uniform in their ranges
  (I-JEPA's convention), give ``h = round(sqrt(s H' W' a))``, ``w = round(sqrt(s H' W' / a))``,
  clipped to the grid;
* each block's position is drawn per image, uniformly over *every* valid top-left corner, the
  last row and column included (the reference collator's ``randint(0, H' - h)`` never reaches
  them);
* the context keeps a different number of patches in each image (the targets cut different
  amounts out of it). Each image's context is cut to the batch's smallest count by keeping a
  uniformly random subset of its patches, never the first ones in raster order: truncating the
  sorted indices, as the reference collator does, drops the bottom of the context block
  systematically (facebookresearch/ijepa issue #60 reports patches that are never in a
  context). A draw whose smallest context is below ``min_keep`` is redrawn (up to ``tries``
  times, then a one-line error).

Everything comes from a CPU generator seeded by ``(seed, step, rank)``, so a resumed run draws
the same masks and every process its own.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from levyjepa.data.views.multi_view import item_seed

MASK_STREAM = 0x3A5C_B10C
"""XOR-ed into the masks' seed so they never share a stream with the device views."""


class BlockMasks(NamedTuple):
    """Patch indices (raster order on the grid, ``row * W' + col``) of a batch's masks.

    Attributes:
        context: ``(B, K)`` int64, the context patches of each image, sorted.
        targets: ``(B, M, T)`` int64, the patches of each of the ``M`` target blocks, sorted.
    """

    context: torch.Tensor
    targets: torch.Tensor


def mask_generator(*, seed: int, step: int, rank: int) -> torch.Generator:
    """A CPU generator unique to ``(seed, step, rank)``: the views' per-item seed mixing, on a
    stream of its own (device views seed theirs with ``item_seed(seed, step, rank)`` too, and
    masks must not repeat their draws)."""
    return torch.Generator().manual_seed(item_seed(seed, step, rank) ^ MASK_STREAM)


def block_side(scale: tuple[float, float], aspect: tuple[float, float], grid: tuple[int, int],
               generator: torch.Generator) -> tuple[int, int]:
    """Draw a block's ``(h, w)``: area fraction uniform in ``scale``, aspect ``h / w`` uniform
    in ``aspect`` (as I-JEPA's reference masks), both sides at least 1 and at most the grid's."""
    u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
    s = scale[0] + (scale[1] - scale[0]) * u[0]
    a = aspect[0] + (aspect[1] - aspect[0]) * u[1]
    area = s * grid[0] * grid[1]
    h = min(grid[0], max(1, round(math.sqrt(area * a))))
    w = min(grid[1], max(1, round(math.sqrt(area / a))))
    return h, w


def random_subset(chosen: torch.Tensor, keep: int, generator: torch.Generator) -> torch.Tensor:
    """``(B, keep)`` sorted indices: a uniformly random subset of each row's ``True`` places
    (rows of ``chosen`` ``(B, N)`` bool with at least ``keep`` of them)."""
    scores = torch.rand(chosen.shape, generator=generator)
    scores = torch.where(chosen, scores, torch.full_like(scores, 2.0))
    return scores.argsort(1)[:, :keep].sort(1).values


def _place(side: tuple[int, int], grid: tuple[int, int], images: int,
           generator: torch.Generator) -> torch.Tensor:
    """``(images, H', W')`` bool, one ``h x w`` block per image at a uniform position."""
    (h, w), (gh, gw) = side, grid
    top = torch.randint(0, gh - h + 1, (images,), generator=generator)
    left = torch.randint(0, gw - w + 1, (images,), generator=generator)
    rows = torch.arange(gh).view(1, gh, 1)
    cols = torch.arange(gw).view(1, 1, gw)
    return (((rows >= top.view(-1, 1, 1)) & (rows < (top + h).view(-1, 1, 1)))
            & ((cols >= left.view(-1, 1, 1)) & (cols < (left + w).view(-1, 1, 1))))


def sample_block_masks(
    grid: tuple[int, int],
    images: int,
    *,
    generator: torch.Generator,
    targets: int = 4,
    target_scale: tuple[float, float] = (0.15, 0.2),
    target_aspect: tuple[float, float] = (0.75, 1.5),
    context_scale: tuple[float, float] = (0.85, 1.0),
    context_aspect: tuple[float, float] = (1.0, 1.0),
    min_keep: int = 10,
    tries: int = 20,
) -> BlockMasks:
    """Draw the context and target masks of a batch (see the module docstring).

    Args:
        grid: The patch grid ``(H', W')``.
        images: Batch size ``B``.
        generator: CPU generator of every draw (:func:`mask_generator`).
        targets: Target blocks per image ``M``.
        target_scale: Area range of a target block, as a fraction of the grid.
        target_aspect: Aspect-ratio range ``h / w`` of a target block.
        context_scale: Area range of the context block.
        context_aspect: Aspect-ratio range of the context block.
        min_keep: Fewest context patches an image may keep.
        tries: Redraws of the whole batch before giving up.

    Raises:
        ValueError: for a bad argument, or when ``tries`` draws all keep fewer than
            ``min_keep`` context patches in some image.
    """
    if images < 1 or targets < 1 or min(grid) < 1:
        raise ValueError(f"images, targets and the grid must be positive, got {images}, "
                         f"{targets}, {grid}")
    for name, (low, high) in (("target_scale", target_scale), ("context_scale", context_scale)):
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"{name} must satisfy 0 < low <= high <= 1, got {[low, high]}")
    for name, (low, high) in (("target_aspect", target_aspect),
                              ("context_aspect", context_aspect)):
        if not 0.0 < low <= high:
            raise ValueError(f"{name} must satisfy 0 < low <= high, got {[low, high]}")
    for _ in range(tries):
        side = block_side(target_scale, target_aspect, grid, generator)  # shared by all M
        target_maps = torch.stack([_place(side, grid, images, generator)
                                   for _ in range(targets)], 1)
        context_side = block_side(context_scale, context_aspect, grid, generator)
        context_map = _place(context_side, grid, images, generator) & ~target_maps.any(1)
        kept = context_map.flatten(1).sum(1)
        keep = int(kept.min())
        if keep < min_keep:
            continue
        # every image keeps `keep` of its context patches, a uniformly random subset
        context = random_subset(context_map.flatten(1), keep, generator)
        target_idx = torch.stack([
            torch.stack([m.flatten().nonzero().squeeze(1) for m in target_maps[:, t]])
            for t in range(targets)], 1)
        return BlockMasks(context=context, targets=target_idx)
    raise ValueError(f"block masks: {tries} draws kept fewer than min_keep={min_keep} context "
                     f"patches on a {grid[0]}x{grid[1]} grid; lower the target scale or "
                     "min_keep")
