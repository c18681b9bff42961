"""V-JEPA's 3D multi-block masks on a tubelet grid, by two laws (groundwork of ``vjepa``).

A. Bardes et al., "Revisiting Feature Prediction for Learning Visual Representations from
Video", 2024, section 3.2 ("multi-block" masking): a mask is the union of several spatial blocks,
each extended over a temporal span of the clip (scale 1.0: the whole clip, so each block is a
*tube* and the context cannot copy a masked patch from a neighbouring frame). V-JEPA draws two
masks per clip, "short-range" (8 blocks of spatial scale 0.15) and "long-range" (2 blocks of
spatial scale 0.7), aspect ratio 0.75-1.5, and predicts each from its own context (the
complement of its union). How a block is drawn is the authors' code (the 3-D masks collator of
facebookresearch/jepa, ``src/masks/multiblock3d.py``). Two laws (``law``; docs/masks.md):

``reference`` (the authors' collator, reproduced from its description), one mask for a batch of
``B`` clips on a ``T' x H' x W'`` grid:

* the blocks' size is drawn once per step and shared by every block of every clip and every
  process: three uniform numbers (temporal scale, spatial scale, aspect), from a generator the
  collator seeds with the iteration counter alone, so a step's masks (short- and long-range)
  all draw the *same* three numbers (the method passes a fresh
  :func:`levyjepa.methods.block_masks.size_generator` for each mask);
  ``t = max(1, floor(u_t T'))``, area ``n = floor(s H' W')``, ``h = round(sqrt(n a))``,
  ``w = round(sqrt(n / a))``, each cut to at most the grid's side (a long-range block of 0.7
  on a 14x14 grid spans the whole height when ``a >= 13.5^2 / 137``: 22.6% of draws), and here
  at least 1;
* each block's corner is uniform over every valid position;
* a clip whose context is empty has its blocks placed again (``min_keep``, default 1: fewer
  than ``min_keep`` context tubelets; ``tries``, default 1000, stand for the collator's endless
  loop);
* every clip's context and targets are cut to the batch's smallest counts by keeping their
  *first* tubelets in raster order (so the cut falls on the end of the clip).

``levyjepa`` (this library's earlier law, kept so that runs measured with it reproduce):

* area fraction ``s`` and aspect ``a = h / w`` drawn independently from the position
  generator, ``h = round(sqrt(s H' W' a))``, ``w = round(sqrt(s H' W' / a))``
  (:func:`levyjepa.methods.block_masks.block_side`), each side then cut to at most the grid's
  side minus 1 (so two long-range blocks cannot hide every tubelet); the temporal length is
  ``round(u T')`` for ``u`` uniform in ``temporal_scale``, at least 1;
* each block's corner is uniform over every valid position, per clip;
* a clip whose context keeps fewer than ``min_keep`` tubelets (default 10) has its blocks
  placed again (up to ``tries`` times, default 20, then a one-line error);
* each clip's context and targets are cut to the batch's smallest counts by keeping a
  uniformly random subset (never the first ones in raster order, which would bias the cut
  towards the end of the clip).

Positions come from the CPU generator of :func:`levyjepa.methods.block_masks.mask_generator`,
seeded by ``(seed, step, rank)``; a method drawing several masks draws them in turn from it.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch

from levyjepa.methods.block_masks import (
    block_side,
    check_law,
    first_in_raster,
    random_subset,
)

LAW_DEFAULTS = {"reference": {"min_keep": 1, "tries": 1000},
                "levyjepa": {"min_keep": 10, "tries": 20}}
"""``min_keep`` and ``tries`` of each law when not given."""


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


def reference_tube_size(spatial_scale: tuple[float, float],
                        temporal_scale: tuple[float, float], aspect: tuple[float, float],
                        grid: tuple[int, int, int],
                        generator: torch.Generator) -> tuple[tuple[int, int], int]:
    """The ``reference`` law's ``((h, w), t)``: three uniform numbers (temporal scale, spatial
    scale, aspect, in this order), floored temporal length and area, rounded sides cut to the
    grid's (and at least 1)."""
    u_t, u_s, u_a = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
    length = max(1, int(grid[0] * (temporal_scale[0]
                                   + (temporal_scale[1] - temporal_scale[0]) * u_t)))
    area = int(grid[1] * grid[2] * (spatial_scale[0]
                                    + (spatial_scale[1] - spatial_scale[0]) * u_s))
    a = aspect[0] + (aspect[1] - aspect[0]) * u_a
    h = max(1, min(round(math.sqrt(area * a)), grid[1]))
    w = max(1, min(round(math.sqrt(area / a)), grid[2]))
    return (h, w), min(length, grid[0])


def sample_tube_masks(
    grid: tuple[int, int, int],
    clips: int,
    *,
    generator: torch.Generator,
    law: str = "reference",
    sizes: Optional[torch.Generator] = None,
    blocks: int = 8,
    spatial_scale: tuple[float, float] = (0.15, 0.15),
    temporal_scale: tuple[float, float] = (1.0, 1.0),
    aspect: tuple[float, float] = (0.75, 1.5),
    min_keep: Optional[int] = None,
    tries: Optional[int] = None,
) -> TubeMasks:
    """Draw one multi-block mask for a batch of clips (see the module docstring).

    Args:
        grid: The tubelet grid ``(T', H', W')``.
        clips: Batch size ``B``.
        generator: CPU generator of the positions (and of the sizes with ``levyjepa``).
        law: ``reference`` (the authors' collator) or ``levyjepa``.
        sizes: ``reference``: generator of the block size
            (:func:`levyjepa.methods.block_masks.size_generator`); ``None``: ``generator``.
        blocks: Blocks in the mask's union.
        spatial_scale: Area range of a block's spatial section (fraction of ``H' W'``).
        temporal_scale: Range of a block's temporal length (fraction of ``T'``; 1: the clip).
        aspect: Aspect-ratio range ``h / w`` of a block.
        min_keep: Fewest context tubelets a clip may keep (``None``: the law's,
            :data:`LAW_DEFAULTS`).
        tries: Placements of a clip's blocks before giving up (``None``: the law's).

    Raises:
        ValueError: for a bad argument, or when some clip keeps fewer than ``min_keep`` context
            tubelets after ``tries`` placements.
    """
    check_law(law)
    min_keep = LAW_DEFAULTS[law]["min_keep"] if min_keep is None else min_keep
    tries = LAW_DEFAULTS[law]["tries"] if tries is None else tries
    if clips < 1 or blocks < 1 or len(grid) != 3 or min(grid) < 1:
        raise ValueError(f"clips, blocks and the 3-D grid must be positive, got {clips}, "
                         f"{blocks}, {grid}")
    for name, (low, high) in (("spatial_scale", spatial_scale),
                              ("temporal_scale", temporal_scale)):
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"{name} must satisfy 0 < low <= high <= 1, got {[low, high]}")
    if not 0.0 < aspect[0] <= aspect[1]:
        raise ValueError(f"aspect must satisfy 0 < low <= high, got {list(aspect)}")
    if law == "reference":
        side, length = reference_tube_size(spatial_scale, temporal_scale, aspect, grid,
                                           sizes or generator)
    else:  # the earlier releases' draws, in their order
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
    if law == "reference":  # the first tubelets in raster order: the cut falls on the clip's end
        context, targets = first_in_raster(~flat, keep), first_in_raster(flat, predict)
    else:
        context = random_subset(~flat, keep, generator)
        targets = random_subset(flat, predict, generator)
    return TubeMasks(context=context, targets=targets, spatial_side=side,
                     temporal_length=length, corners=corners)


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
