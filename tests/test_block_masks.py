"""I-JEPA's multi-block masks by the ``levyjepa`` law (the earlier default, which the committed
recipes with measured results pin): sizes against the specification, disjointness, min_keep,
seeding by (step, rank), and no positional bias (ijepa issue #60). The ``reference`` law, the
default now, is tested in tests/test_mask_laws.py."""

from __future__ import annotations

import pytest
import torch

from levyjepa.methods.block_masks import block_side, mask_generator, sample_block_masks

GRID = (14, 14)  # 224 px with 16 px patches, I-JEPA's ViT-H/14 grid is 16x16; any grid works


def test_block_sides_follow_the_scale_and_aspect_laws() -> None:
    gen = torch.Generator().manual_seed(0)
    sides = [block_side((0.15, 0.2), (0.75, 1.5), GRID, gen) for _ in range(4000)]
    area = GRID[0] * GRID[1]
    for h, w in sides:
        # rounding each side moves the area by at most (h + w) / 2 + 1/4 patches
        slack = ((h + w) / 2 + 0.25) / area
        assert 0.15 - slack <= h * w / area <= 0.2 + slack
        assert 0.75 * (1 - 1 / w) <= h / w <= 1.5 * (1 + 1 / min(h, w)) + 1e-9
    # the scale is uniform on [0.15, 0.2]: its mean is 0.175 up to rounding and sampling noise
    mean = sum(h * w for h, w in sides) / len(sides) / area
    assert abs(mean - 0.175) < 0.006
    # the aspect h / w is uniform on [0.75, 1.5] (I-JEPA's convention): its mean is 1.125 up to
    # rounding, and blocks are taller than wide more often than wider than tall
    mean = sum(h / w for h, w in sides) / len(sides)
    assert abs(mean - 1.125) < 0.03, mean
    assert sum(h > w for h, w in sides) > 1.5 * sum(w > h for h, w in sides)


def test_masks_are_disjoint_keep_enough_and_have_equal_sizes_in_a_batch() -> None:
    for step in range(50):
        masks = sample_block_masks(GRID, 16, generator=mask_generator(seed=0, step=step, rank=0),
                                   law="levyjepa")
        b, k = masks.context.shape
        assert b == 16 and k >= 10 and masks.targets.shape[:2] == (16, 4)
        for i in range(b):
            context = set(masks.context[i].tolist())
            assert len(context) == k  # no repeated patch
            for t in range(4):
                target = set(masks.targets[i, t].tolist())
                assert not context & target
                assert all(0 <= p < GRID[0] * GRID[1] for p in target)
        assert bool((masks.context.diff(dim=1) > 0).all())  # sorted


def test_masks_are_seeded_by_step_and_rank() -> None:
    def draw(step: int, rank: int):
        return sample_block_masks(GRID, 8, generator=mask_generator(seed=3, step=step, rank=rank),
                                  law="levyjepa")

    a, again = draw(5, 0), draw(5, 0)
    assert torch.equal(a.context, again.context) and torch.equal(a.targets, again.targets)
    for other in (draw(6, 0), draw(5, 1)):
        assert (other.context.shape != a.context.shape
                or not torch.equal(other.context, a.context)
                or not torch.equal(other.targets, a.targets))


def test_no_positional_bias_in_context_or_targets() -> None:
    """Over many batches of 128 every patch is sometimes in a context and sometimes a target,
    and the grid's mirror halves are covered equally (the truncation of sorted indices and the
    unreachable last row/column of the reference collator fail both)."""
    h, w = GRID
    context = torch.zeros(h * w)
    target = torch.zeros(h * w)
    draws = 40
    for step in range(draws):
        masks = sample_block_masks(GRID, 128, law="levyjepa",
                                   generator=mask_generator(seed=1, step=step, rank=0))
        context += torch.bincount(masks.context.flatten(), minlength=h * w).float()
        target += torch.bincount(masks.targets.flatten(), minlength=h * w).float()
    assert bool((context > 0).all()) and bool((target > 0).all())
    c, t = context.view(h, w), target.view(h, w)
    for field in (c, t):
        top, bottom = field[: h // 2].sum(), field[h - h // 2:].sum()
        left, right = field[:, : w // 2].sum(), field[:, w - w // 2:].sum()
        # halves of a symmetric design: equal up to noise (relative 3% on about 1e5 counts)
        assert abs(float(top - bottom)) / float(top + bottom) < 0.03
        assert abs(float(left - right)) / float(left + right) < 0.03


def test_bad_arguments_and_impossible_masks_are_refused() -> None:
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"target_scale must satisfy"):
        sample_block_masks(GRID, 2, generator=gen, target_scale=(0.3, 0.2), law="levyjepa")
    with pytest.raises(ValueError, match=r"fewer than min_keep=190 context patches"):
        sample_block_masks(GRID, 2, generator=gen, min_keep=190, tries=3, law="levyjepa")


def test_masks_draw_from_a_stream_of_their_own() -> None:
    """Device views seed their generator with ``item_seed(seed, step, rank)``; the masks must
    not draw the same numbers, or target sizes would follow the first view's crop."""
    from levyjepa.data.views.multi_view import item_seed

    for seed, step, rank in [(0, 0, 0), (3, 17, 1)]:
        views = torch.Generator().manual_seed(item_seed(seed, step, rank))
        masks = mask_generator(seed=seed, step=step, rank=rank)
        assert not torch.equal(torch.rand(8, generator=views), torch.rand(8, generator=masks))
