"""I-JEPA's multi-block masks on a patch grid, by two laws (groundwork of the ``ijepa`` method).

M. Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture", CVPR 2023, section 3: for each image, ``targets`` blocks of scale 0.15-0.2 of the
patches and aspect ratio 0.75-1.5 are the patches to predict, and one context block of scale
0.85-1.0 (aspect 1) with every target patch removed is what the context encoder sees. The paper
gives these ranges; how a block is drawn from them is the authors' code (the masks collator of
facebookresearch/ijepa, ``src/masks/multiblock.py``). Two laws are offered
(``law`` / the method's ``mask_law``; docs/masks.md compares them with pictures):

``reference`` (the authors' collator, reproduced from its description), for a batch of ``B``
images on an ``H' x W'`` grid:

* one uniform number ``u`` sets *both* the scale and the aspect of a block, so the two are
  perfectly correlated: ``s = s_0 + u (s_1 - s_0)``, ``a = a_0 + u (a_1 - a_0)``; the area is
  floored, ``n = floor(s H' W')``, and ``h = round(sqrt(n a))``, ``w = round(sqrt(n / a))``, each
  cut to at most the grid's side minus 1 (and here at least 1);
* the target size and then the context size are drawn once per step from a generator shared by
  every process (:func:`size_generator`: the collator seeds it with the iteration counter), so
  the whole global batch shares them;
* a block's top-left corner is uniform over ``0 .. H' - h - 1`` (and ``0 .. W' - w - 1``): a
  block never covers the last row or column, and with scale 0.85-1.0 on a 14x14 grid the
  context block is always the 13x13 block at the top-left corner;
* the context is its block minus every target block; an image whose context keeps ``min_keep``
  patches or fewer has its context block placed again (``tries`` times), then again with the
  last target no longer removed, and so on down to no target removed (the collator's
  relaxation), and only then an error;
* every image's context is cut to the batch's smallest count by keeping its *first* patches in
  raster order (the targets all have ``h w`` patches already).

The collator would loop forever on a target block of ``min_keep`` patches or fewer (its size
cannot change by placing it again); here such a block is kept, which differs from the reference
only where the reference gives no masks at all.

``levyjepa`` (this library's earlier law, kept so that runs measured with it reproduce):

* scale ``s`` and aspect ``a = h / w`` drawn independently, both uniform in their ranges, give
  ``h = round(sqrt(s H' W' a))``, ``w = round(sqrt(s H' W' / a))``, clipped to ``[1, H']``; the
  target size and the context size are drawn once per batch (per process);
* each block's corner is uniform over *every* valid position, the last row and column included;
* each image's context is cut to the batch's smallest count by keeping a uniformly random
  subset of its patches (truncating the sorted indices drops the bottom of the context
  systematically: facebookresearch/ijepa issue #60); a batch whose smallest context is below
  ``min_keep`` is drawn again (``tries`` times, then an error).

Positions come from a CPU generator seeded by ``(seed, step, rank)`` (:func:`mask_generator`),
so a resumed run draws the same masks and every process its own.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch

from levyjepa.data.views.multi_view import item_seed

MASK_STREAM = 0x3A5C_B10C
"""XOR-ed into the masks' seed so they never share a stream with the device views."""
SIZE_STREAM = 0x51_2E_B1_0C
"""XOR-ed into the seed of the reference law's per-step block sizes (another stream again)."""
MASK_LAWS = ("reference", "levyjepa")
"""The mask laws: the authors' collators, or this library's earlier law."""


class BlockMasks(NamedTuple):
    """Patch indices (raster order on the grid, ``row * W' + col``) of a batch's masks.

    Attributes:
        context: ``(B, K)`` int64, the context patches of each image, sorted.
        targets: ``(B, M, T)`` int64, the patches of each of the ``M`` target blocks, sorted.
    """

    context: torch.Tensor
    targets: torch.Tensor


def check_law(law: str) -> str:
    """``law`` if it is one of :data:`MASK_LAWS`, else a one-line ``ValueError``."""
    if law not in MASK_LAWS:
        raise ValueError(f"mask_law must be one of {', '.join(MASK_LAWS)}, got {law!r}")
    return law


def mask_generator(*, seed: int, step: int, rank: int) -> torch.Generator:
    """A CPU generator unique to ``(seed, step, rank)``: the views' per-item seed mixing, on a
    stream of its own (device views seed theirs with ``item_seed(seed, step, rank)`` too, and
    masks must not repeat their draws)."""
    return torch.Generator().manual_seed(item_seed(seed, step, rank) ^ MASK_STREAM)


def size_generator(*, seed: int, step: int) -> torch.Generator:
    """A CPU generator unique to ``(seed, step)``, the same on every process: the reference
    law's block sizes (the authors' collators seed their size generator with the iteration
    counter alone, so every process draws the same sizes at a step)."""
    return torch.Generator().manual_seed(item_seed(seed, step, 0) ^ SIZE_STREAM)


def block_side(scale: tuple[float, float], aspect: tuple[float, float], grid: tuple[int, int],
               generator: torch.Generator) -> tuple[int, int]:
    """The ``levyjepa`` law's ``(h, w)``: area fraction uniform in ``scale`` and aspect ``h / w``
    uniform in ``aspect``, drawn independently, both sides at least 1 and at most the grid's."""
    u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
    s = scale[0] + (scale[1] - scale[0]) * u[0]
    a = aspect[0] + (aspect[1] - aspect[0]) * u[1]
    area = s * grid[0] * grid[1]
    h = min(grid[0], max(1, round(math.sqrt(area * a))))
    w = min(grid[1], max(1, round(math.sqrt(area / a))))
    return h, w


def reference_block_side(scale: tuple[float, float], aspect: tuple[float, float],
                         grid: tuple[int, int], generator: torch.Generator) -> tuple[int, int]:
    """The ``reference`` law's ``(h, w)``: one uniform ``u`` gives the scale and the aspect,
    the area ``floor(s H' W')``, sides rounded and cut to ``[1, side - 1]`` (grid sides >= 2)."""
    u = float(torch.rand(1, generator=generator, dtype=torch.float64))
    s = scale[0] + (scale[1] - scale[0]) * u
    a = aspect[0] + (aspect[1] - aspect[0]) * u  # the same u: scale and aspect rise together
    area = int(grid[0] * grid[1] * s)
    h = round(math.sqrt(area * a))
    w = round(math.sqrt(area / a))
    return max(1, min(h, grid[0] - 1)), max(1, min(w, grid[1] - 1))


def random_subset(chosen: torch.Tensor, keep: int, generator: torch.Generator) -> torch.Tensor:
    """``(B, keep)`` sorted indices: a uniformly random subset of each row's ``True`` places
    (rows of ``chosen`` ``(B, N)`` bool with at least ``keep`` of them)."""
    scores = torch.rand(chosen.shape, generator=generator)
    scores = torch.where(chosen, scores, torch.full_like(scores, 2.0))
    return scores.argsort(1)[:, :keep].sort(1).values


def first_in_raster(chosen: torch.Tensor, keep: int) -> torch.Tensor:
    """``(B, keep)`` sorted indices: the first ``keep`` ``True`` places of each row of
    ``chosen`` ``(B, N)`` bool (the reference law's cut; rows have at least ``keep``)."""
    n = chosen.shape[1]
    place = torch.arange(n).expand_as(chosen)
    return torch.where(chosen, place, torch.full_like(place, n)).sort(1).values[:, :keep]


def _place(side: tuple[int, int], grid: tuple[int, int], images: int,
           generator: torch.Generator, *, last: bool = True) -> torch.Tensor:
    """``(images, H', W')`` bool, one ``h x w`` block per image at a uniform corner; with
    ``last=False`` the corner stops one short (the reference: never the last row or column)."""
    (h, w), (gh, gw) = side, grid
    reach = 1 if last else 0
    top = torch.randint(0, gh - h + reach, (images,), generator=generator)
    left = torch.randint(0, gw - w + reach, (images,), generator=generator)
    rows = torch.arange(gh).view(1, gh, 1)
    cols = torch.arange(gw).view(1, 1, gw)
    return (((rows >= top.view(-1, 1, 1)) & (rows < (top + h).view(-1, 1, 1)))
            & ((cols >= left.view(-1, 1, 1)) & (cols < (left + w).view(-1, 1, 1))))


def _indices(target_maps: torch.Tensor) -> torch.Tensor:
    """``(B, M, h w)`` sorted raster indices of ``(B, M, H', W')`` maps of equal blocks."""
    b, m = target_maps.shape[:2]
    return target_maps.flatten(2).nonzero()[:, 2].view(b, m, -1)


def sample_block_masks(
    grid: tuple[int, int],
    images: int,
    *,
    generator: torch.Generator,
    law: str = "reference",
    sizes: Optional[torch.Generator] = None,
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
        generator: CPU generator of the positions (:func:`mask_generator`).
        law: ``reference`` (the authors' collator) or ``levyjepa``.
        sizes: ``reference``: generator of the block sizes (:func:`size_generator`, shared by
            the processes); ``None``: ``generator``. Unused by ``levyjepa``.
        targets: Target blocks per image ``M``.
        target_scale: Area range of a target block, as a fraction of the grid.
        target_aspect: Aspect-ratio range ``h / w`` of a target block.
        context_scale: Area range of the context block.
        context_aspect: Aspect-ratio range of the context block.
        min_keep: ``reference``: an image's context must keep more than this many patches;
            ``levyjepa``: at least this many.
        tries: ``reference``: placements of a context block per relaxation; ``levyjepa``:
            draws of the whole batch.

    Raises:
        ValueError: for a bad argument, or when no context keeps enough patches.
    """
    check_law(law)
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
    if tries < 1:
        raise ValueError(f"tries must be >= 1, got {tries}")
    settings = dict(targets=targets, target_scale=target_scale, target_aspect=target_aspect,
                    context_scale=context_scale, context_aspect=context_aspect,
                    min_keep=min_keep, tries=tries)
    if law == "reference":
        return _reference_masks(grid, images, generator, sizes or generator, **settings)
    return _levyjepa_masks(grid, images, generator, **settings)


def _reference_masks(grid: tuple[int, int], images: int, generator: torch.Generator,
                     sizes: torch.Generator, *, targets: int, target_scale: tuple[float, float],
                     target_aspect: tuple[float, float], context_scale: tuple[float, float],
                     context_aspect: tuple[float, float], min_keep: int,
                     tries: int) -> BlockMasks:
    """The ``reference`` law (module docstring)."""
    if min(grid) < 2:
        raise ValueError(f"the reference mask law needs a grid of at least 2x2, got "
                         f"{grid[0]}x{grid[1]}")
    side = reference_block_side(target_scale, target_aspect, grid, sizes)
    context_side = reference_block_side(context_scale, context_aspect, grid, sizes)
    target_maps = torch.stack([_place(side, grid, images, generator, last=False)
                               for _ in range(targets)], 1)  # (B, M, H', W')
    context_map = torch.zeros(images, *grid, dtype=torch.bool)
    pending = torch.ones(images, dtype=torch.bool)
    # `tries` placements with the targets 0 .. level-1 removed, for level = M, M - 1, ..., 0
    for level in range(targets, -1, -1):
        removed = target_maps[:, :level].any(1)
        for _ in range(tries):
            rows = pending.nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            block = _place(context_side, grid, rows.numel(), generator, last=False)
            block &= ~removed[rows]
            fits = block.flatten(1).sum(1) > min_keep
            context_map[rows[fits]] = block[fits]
            pending[rows[fits]] = False
    if pending.any():
        raise ValueError(f"block masks: a {context_side[0]}x{context_side[1]} context block "
                         f"keeps min_keep={min_keep} patches or fewer on a {grid[0]}x{grid[1]} "
                         "grid even with no target removed; lower min_keep")
    flat = context_map.flatten(1)
    keep = int(flat.sum(1).min())
    return BlockMasks(context=first_in_raster(flat, keep), targets=_indices(target_maps))


def _levyjepa_masks(grid: tuple[int, int], images: int, generator: torch.Generator, *,
                    targets: int, target_scale: tuple[float, float],
                    target_aspect: tuple[float, float], context_scale: tuple[float, float],
                    context_aspect: tuple[float, float], min_keep: int,
                    tries: int) -> BlockMasks:
    """The ``levyjepa`` law (module docstring); its draws are those of the earlier releases."""
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
        return BlockMasks(context=context, targets=_indices(target_maps))
    raise ValueError(f"block masks: {tries} draws kept fewer than min_keep={min_keep} context "
                     f"patches on a {grid[0]}x{grid[1]} grid; lower the target scale or "
                     "min_keep")
