"""V-JEPA's 3D multi-block masks on a tubelet grid (groundwork of the ``vjepa`` method).

A. Bardes et al., "Revisiting Feature Prediction for Learning Visual Representations from
Video", 2024, section 3.2 ("multi-block" masking): a mask is the union of several spatial blocks,
each extended over a temporal span of the clip (scale 1.0: the whole clip, so each block is a
*tube* and the context cannot copy a masked patch from a neighbouring frame). V-JEPA draws two
masks per clip, "short-range" (8 blocks of spatial scale 0.15) and "long-range" (2 blocks of
spatial scale 0.7), aspect ratio 0.75-1.5, and predicts each from its own context (the
complement of its union).

Drawing one mask for a batch of ``B`` clips on a ``T' x H' x W'`` grid:

* the blocks' spatial side ``(h, w)`` and temporal length are drawn once per batch and shared by
  every block (as V-JEPA does): area fraction ``s`` uniform in ``spatial_scale`` and aspect
  ``a = h / w`` uniform in ``aspect`` give ``h = round(sqrt(s H' W' a))``, ``w = round(sqrt(s
  H' W' / a))`` (:func:`levyjepa.methods.block_masks.block_side`), then each side cut to at
  most the grid's side minus 1 (as V-JEPA's collator does: a block never spans the frame, so two
  long-range blocks cannot hide every tubelet); the temporal length is
  ``round(u T')`` for ``u`` uniform in ``temporal_scale``, at least 1;
* each block's position is uniform over every valid corner, per clip;
* a clip whose context (the tubelets outside every block) keeps fewer than ``min_keep`` tubelets
  has its blocks placed again (up to ``tries`` times, then a one-line error);
* clips keep different numbers of context and of target tubelets; each is cut to the batch's
  smallest count by keeping a uniformly random subset (never the first ones in raster order,
  which would bias the cut towards the end of the clip).

Everything comes from the CPU generator of :func:`levyjepa.methods.block_masks.mask_generator`,
seeded by ``(seed, step, rank)``; a method drawing several masks draws them in turn from it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from levyjepa.methods.block_masks import block_side, random_subset


class TubeMasks(NamedTuple):
    """Tubelet indices (raster order ``(t * H' + h) * W' + w``) of one mask of a batch.

    Attributes:
        context: ``(B, K)`` int64, the tubelets the context encoder sees, sorted.
        targets: ``(B, P)`` int64, the masked tubelets the predictor fills in, sorted.
        spatial_side: ``(h, w)`` of the blocks.
        temporal_length: Tubelet steps each block spans.
        corners: ``(B, blocks, 3)`` int64, each block's first ``(t, row, col)``: the mask of a
            clip is the union of its blocks (before the cut to the batch's smallest count).
    """

    context: torch.Tensor
    targets: torch.Tensor
    spatial_side: tuple[int, int]
    temporal_length: int
    corners: torch.Tensor


def _corners(side: tuple[int, int], length: int, grid: tuple[int, int, int], clips: int,
             blocks: int, generator: torch.Generator) -> torch.Tensor:
    """``(clips, blocks, 3)`` uniformly drawn first ``(t, row, col)`` of every block."""
    (h, w), (gt, gh, gw) = side, grid
    shape = (clips, blocks)
    start = torch.randint(0, gt - length + 1, shape, generator=generator)
    top = torch.randint(0, gh - h + 1, shape, generator=generator)
    left = torch.randint(0, gw - w + 1, shape, generator=generator)
    return torch.stack([start, top, left], -1)


def union_of_blocks(corners: torch.Tensor, side: tuple[int, int], length: int,
                    grid: tuple[int, int, int]) -> torch.Tensor:
    """``(B, T', H', W')`` bool: the union of each clip's ``length x h x w`` blocks."""
    (h, w), (gt, gh, gw) = side, grid
    start, top, left = (corners[..., i, None, None, None] for i in range(3))
    t = torch.arange(gt).view(1, 1, gt, 1, 1)
    r = torch.arange(gh).view(1, 1, 1, gh, 1)
    c = torch.arange(gw).view(1, 1, 1, 1, gw)
    inside = ((t >= start) & (t < start + length) & (r >= top) & (r < top + h)
              & (c >= left) & (c < left + w))
    return inside.any(1)


def sample_tube_masks(
    grid: tuple[int, int, int],
    clips: int,
    *,
    generator: torch.Generator,
    blocks: int = 8,
    spatial_scale: tuple[float, float] = (0.15, 0.15),
    temporal_scale: tuple[float, float] = (1.0, 1.0),
    aspect: tuple[float, float] = (0.75, 1.5),
    min_keep: int = 10,
    tries: int = 20,
) -> TubeMasks:
    """Draw one multi-block mask for a batch of clips (see the module docstring).

    Args:
        grid: The tubelet grid ``(T', H', W')``.
        clips: Batch size ``B``.
        generator: CPU generator of every draw.
        blocks: Blocks in the mask's union.
        spatial_scale: Area range of a block's spatial section (fraction of ``H' W'``).
        temporal_scale: Range of a block's temporal length (fraction of ``T'``; 1: the clip).
        aspect: Aspect-ratio range ``h / w`` of a block.
        min_keep: Fewest context tubelets a clip may keep.
        tries: Placements of a clip's blocks before giving up.

    Raises:
        ValueError: for a bad argument, or when some clip keeps fewer than ``min_keep`` context
            tubelets after ``tries`` placements.
    """
    if clips < 1 or blocks < 1 or len(grid) != 3 or min(grid) < 1:
        raise ValueError(f"clips, blocks and the 3-D grid must be positive, got {clips}, "
                         f"{blocks}, {grid}")
    for name, (low, high) in (("spatial_scale", spatial_scale),
                              ("temporal_scale", temporal_scale)):
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"{name} must satisfy 0 < low <= high <= 1, got {[low, high]}")
    if not 0.0 < aspect[0] <= aspect[1]:
        raise ValueError(f"aspect must satisfy 0 < low <= high, got {list(aspect)}")
    side = block_side(spatial_scale, aspect, grid[1:], generator)
    side = (min(side[0], max(1, grid[1] - 1)), min(side[1], max(1, grid[2] - 1)))
    u = float(torch.rand(1, generator=generator, dtype=torch.float64))
    length = min(grid[0], max(1, round((temporal_scale[0]
                                        + (temporal_scale[1] - temporal_scale[0]) * u)
                                       * grid[0])))
    corners = _corners(side, length, grid, clips, blocks, generator)
    masked = union_of_blocks(corners, side, length, grid)
    for _ in range(tries):
        short = (~masked).flatten(1).sum(1) < min_keep
        if not short.any():
            break
        corners[short] = _corners(side, length, grid, int(short.sum()), blocks, generator)
        masked = union_of_blocks(corners, side, length, grid)
    else:
        if ((~masked).flatten(1).sum(1) < min_keep).any():
            raise ValueError(
                f"tube masks: {blocks} blocks of {side[0]}x{side[1]} patches over {length} "
                f"steps leave fewer than min_keep={min_keep} context tubelets of a "
                f"{'x'.join(map(str, grid))} grid after {tries} placements; lower the spatial "
                "scale, the blocks or min_keep")
    flat = masked.flatten(1)
    keep = int((~flat).sum(1).min())
    predict = int(flat.sum(1).min())
    return TubeMasks(context=random_subset(~flat, keep, generator),
                     targets=random_subset(flat, predict, generator),
                     spatial_side=side, temporal_length=length, corners=corners)


def expected_masked_fraction(side: tuple[int, int], grid: tuple[int, int], blocks: int) -> float:
    """The expected fraction of a ``H' x W'`` grid covered by ``blocks`` independent uniformly
    placed ``h x w`` blocks: ``mean over cells of 1 - (1 - P(cell in a block)) ** blocks``
    (a reference value for the tests and the docs)."""
    (h, w), (gh, gw) = side, grid
    rows = [min(i, gh - h) - max(0, i - h + 1) + 1 for i in range(gh)]
    cols = [min(j, gw - w) - max(0, j - w + 1) + 1 for j in range(gw)]
    corners = (gh - h + 1) * (gw - w + 1)
    total = math.fsum(1.0 - (1.0 - r * c / corners) ** blocks for r in rows for c in cols)
    return total / (gh * gw)
