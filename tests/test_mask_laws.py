"""The reference mask laws of I-JEPA and V-JEPA and VICReg's per-view projector, held against
values derived here from the authors' algorithms as described in docs/masks.md.

* I-JEPA, ``reference``: the exact probability of each target height and width on a 14x14 grid
  (one uniform number gives scale and aspect; enumerated on a fine grid of that number) against
  frequencies over 4,000 draws, within a binomial tolerance; no block in the last row or
  column; each context the first patches in raster order of the 13x13 block minus the targets;
  the batch-cut context size against an independent plain-Python port; sizes shared by every
  process. ``levyjepa`` stays as it was (tests/test_block_masks.py) and differs visibly.
* V-JEPA, ``reference``: the fraction of long-range blocks spanning the full height (closed
  form) against draws; floored area and length; cuts in raster order; one size for both masks.
* VICReg: ``per_view`` projects each view with its own BatchNorm statistics (a hand-written
  BatchNorm MLP), ``joint`` with the stacked views', and they differ; per view on 2 processes
  with the global BatchNorm equals one process on the whole batch.
"""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from levyjepa.config.recipe import load_recipe
from levyjepa.encoders.video_vit import VideoViTEncoder
from levyjepa.encoders.vit import ViTEncoder
from levyjepa.methods.block_masks import (
    block_side,
    mask_generator,
    reference_block_side,
    sample_block_masks,
    size_generator,
)
from levyjepa.methods.ijepa import IJEPA, block_side_of
from levyjepa.methods.tube_masks import reference_tube_size, sample_tube_masks, union_of_blocks
from levyjepa.methods.vicreg import VICReg
from levyjepa.methods.vjepa import VJEPA

ROOT = Path(__file__).resolve().parents[1]
GRID = (14, 14)  # 224 px, patch 16
TARGET = dict(scale=(0.15, 0.2), aspect=(0.75, 1.5))


def z_bound(count: int, n: int, p: float, slack: float = 0.0) -> bool:
    """``count`` of ``n`` draws is within 4.5 binomial standard deviations of ``n p``
    (plus ``slack`` draws for an approximate ``p``)."""
    return abs(count - n * p) <= 4.5 * math.sqrt(n * p * (1 - p)) + slack + 1e-9


def reference_side_of_u(u: float, scale: tuple[float, float], aspect: tuple[float, float],
                        grid: tuple[int, int]) -> tuple[int, int]:
    """I-JEPA's collator, by description: scale and aspect from the same ``u``, area floored,
    sides rounded, then lowered while not below the grid's side."""
    s = scale[0] + u * (scale[1] - scale[0])
    a = aspect[0] + u * (aspect[1] - aspect[0])
    n = math.floor(grid[0] * grid[1] * s)
    h, w = int(round(math.sqrt(n * a))), int(round(math.sqrt(n / a)))
    while h >= grid[0]:
        h -= 1
    while w >= grid[1]:
        w -= 1
    return h, w


def exact_side_law(points: int = 100_000) -> tuple[dict, dict, set]:
    """Probabilities of each height and width, and the support of ``(h, w)``, under the
    reference law on GRID: ``u`` enumerated at ``points`` midpoints (each of the few
    breakpoints moves a probability by at most ``1 / points``)."""
    heights, widths, pairs = Counter(), Counter(), set()
    for i in range(points):
        h, w = reference_side_of_u((i + 0.5) / points, TARGET["scale"], TARGET["aspect"], GRID)
        heights[h] += 1
        widths[w] += 1
        pairs.add((h, w))
    return ({k: v / points for k, v in heights.items()},
            {k: v / points for k, v in widths.items()}, pairs)


# ---- I-JEPA --------------------------------------------------------------------------------


def test_reference_target_sides_follow_their_exact_law() -> None:
    p_h, p_w, support = exact_side_law()
    assert set(p_h) == {5, 6, 7, 8} and set(p_w) == {5, 6}  # one u: a narrow joint law
    n = 4000
    gen = torch.Generator().manual_seed(0)
    sides = [reference_block_side(TARGET["scale"], TARGET["aspect"], GRID, gen) for _ in range(n)]
    heights, widths = Counter(h for h, _ in sides), Counter(w for _, w in sides)
    for law, counts in ((p_h, heights), (p_w, widths)):
        assert set(counts) <= set(law)
        for k, p in law.items():
            assert z_bound(counts[k], n, p, slack=n * 1e-4), (k, counts[k], n * p)
    assert set(sides) <= support
    # the levyjepa law draws scale and aspect apart: widths 4 and 7 occur, pairs off the support
    other = [block_side(TARGET["scale"], TARGET["aspect"], GRID, gen) for _ in range(n)]
    assert {4, 7} <= {w for _, w in other}
    assert sum(s not in support for s in other) > n // 10


def test_reference_masks_avoid_the_last_row_and_column_and_cut_in_raster_order() -> None:
    """On 14x14 the context block (scale 0.85-1.0, aspect 1) is always the top-left 13x13
    block; each image's context is that block minus its targets, cut to the batch's smallest
    count by keeping the first patches in raster order."""
    last_hit = {"reference": 0, "levyjepa": 0}
    for step in range(30):
        for law in ("levyjepa", "reference"):  # the reference's masks are checked below
            masks = sample_block_masks(GRID, 16, law=law,
                                       generator=mask_generator(seed=0, step=step, rank=0))
            cells = torch.cat([masks.context.flatten(), masks.targets.flatten()])
            last_hit[law] += int(((cells // 14 == 13) | (cells % 14 == 13)).sum())
        assert masks.targets.shape[:2] == (16, 4)
        h, w = block_side_of(masks.targets, GRID)
        assert masks.targets.shape[2] == h * w
        # rebuild each context by description and compare
        contexts = []
        for i in range(16):
            removed = set(masks.targets[i].flatten().tolist())
            block = [r * 14 + c for r in range(13) for c in range(13)]
            contexts.append([p for p in block if p not in removed])
        k = min(len(c) for c in contexts)
        assert k > 10 and masks.context.shape == (16, k)
        assert masks.context.tolist() == [c[:k] for c in contexts]
    assert last_hit["reference"] == 0 and last_hit["levyjepa"] > 0


def port_reference_batch(rng: random.Random, images: int, targets: int = 4,
                         min_keep: int = 10) -> tuple[list[int], int]:
    """An independent plain-Python port of I-JEPA's collator on GRID (by description):
    per-image context sizes before the cut, and the batch's cut size."""
    th, tw = reference_side_of_u(rng.random(), (0.15, 0.2), (0.75, 1.5), GRID)
    ch, cw = reference_side_of_u(rng.random(), (0.85, 1.0), (1.0, 1.0), GRID)

    def block(h: int, w: int) -> set[tuple[int, int]]:
        top, left = rng.randrange(GRID[0] - h), rng.randrange(GRID[1] - w)
        return {(r, c) for r in range(top, top + h) for c in range(left, left + w)}

    sizes = []
    for _ in range(images):
        blocks = [block(th, tw) for _ in range(targets)]
        for level in range(targets, -1, -1):
            removed = set().union(*blocks[:level])
            context = next((c for c in (block(ch, cw) - removed for _ in range(20))
                            if len(c) > min_keep), None)
            if context is not None:
                break
        sizes.append(len(context))
    return sizes, min(sizes)


def test_reference_context_size_matches_an_independent_port() -> None:
    batches, images = 300, 8
    rng = random.Random(0)
    port = [port_reference_batch(rng, images) for _ in range(batches)]
    ours = [sample_block_masks(GRID, images, generator=mask_generator(seed=2, step=s, rank=0))
            .context.shape[1] for s in range(batches)]
    theirs = [cut for _, cut in port]

    def mean_var(x: list[float]) -> tuple[float, float]:
        m = sum(x) / len(x)
        return m, sum((v - m) ** 2 for v in x) / (len(x) - 1)

    (m1, v1), (m2, v2) = mean_var(ours), mean_var(theirs)
    assert abs(m1 - m2) <= 4.5 * math.sqrt(v1 / batches + v2 / batches), (m1, m2)
    # and the levyjepa law keeps visibly more (its context block may be the whole grid)
    old = [sample_block_masks(GRID, images, law="levyjepa",
                              generator=mask_generator(seed=2, step=s, rank=0)).context.shape[1]
           for s in range(batches)]
    assert sum(old) / batches > m2 + 4.5 * math.sqrt(v2 / batches * 2)


def _ijepa(law: str) -> IJEPA:
    torch.manual_seed(0)
    encoder = ViTEncoder(arch="vit_tiny_patch16_224", img_size=16, patch_size=4, embed_dim=32,
                         depth=1, num_heads=2, drop_path=0.0, emb_dim=32, pool_heads=2,
                         proj_hidden=32, proj_dim=8, pool="mean", with_proj=False)
    return IJEPA(encoder=encoder, seed=0, mask_law=law, min_keep=2, predictor_width=16,
                 predictor_depth=1, predictor_heads=2)


def test_ijepa_defaults_to_the_reference_law_with_sizes_shared_by_every_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import levyjepa.methods.ijepa as ijepa_module

    assert IJEPA.__init__.__kwdefaults__["mask_law"] == "reference"
    method = _ijepa("reference")
    grid = (8, 8)
    first = [method.draw_masks(grid, 4, step=s) for s in range(12)]
    monkeypatch.setattr(ijepa_module, "rank", lambda: 1)
    second = [method.draw_masks(grid, 4, step=s) for s in range(12)]
    for a, b, s in zip(first, second, range(12)):
        assert block_side_of(a.targets, grid) == block_side_of(b.targets, grid)
        replay = reference_block_side((0.15, 0.2), (0.75, 1.5), grid,
                                      size_generator(seed=0, step=s))
        assert block_side_of(a.targets, grid) == replay
    assert any(not torch.equal(a.targets, b.targets) for a, b in zip(first, second))
    with pytest.raises(ValueError, match=r"^mask_law must be one of reference, levyjepa, got "
                                         r"'paper'$"):
        _ijepa("paper")


# ---- V-JEPA --------------------------------------------------------------------------------


def test_reference_long_range_blocks_span_the_full_height_at_their_exact_rate() -> None:
    """Area floor(0.7 * 196) = 137; h = round(sqrt(137 a)) reaches 14 (the cut keeps it) when
    a >= 13.5^2 / 137, so with a uniform on [0.75, 1.5] the rate is (1.5 - 13.5^2/137) / 0.75."""
    n_area = math.floor(0.7 * 196)
    rate = (1.5 - 13.5 ** 2 / n_area) / 0.75
    assert n_area == 137 and 0.22 < rate < 0.23
    n, full, old_full = 3000, 0, 0
    for step in range(n):
        masks = sample_tube_masks((8, 14, 14), 1, blocks=2, spatial_scale=(0.7, 0.7),
                                  generator=mask_generator(seed=0, step=step, rank=0))
        full += masks.spatial_side[0] == 14
        old = sample_tube_masks((8, 14, 14), 1, blocks=2, spatial_scale=(0.7, 0.7),
                                law="levyjepa", generator=mask_generator(seed=0, step=step,
                                                                         rank=0))
        old_full += old.spatial_side[0] == 14
    assert z_bound(full, n, rate), (full, n * rate)
    assert old_full == 0  # the levyjepa law cuts at the side minus 1


def test_reference_floors_area_and_length_and_cuts_in_raster_order() -> None:
    gen = torch.Generator().manual_seed(0)
    # 16 * 0.80625 = 12.9 patches: floored 12 -> sides round(sqrt(12)) = 3; unfloored: 4
    side, length = reference_tube_size((0.80625, 0.80625), (0.6, 0.6), (1.0, 1.0), (8, 4, 4), gen)
    assert side == (3, 3) and length == 4  # floor(0.6 * 8) = 4 (rounding gives 5)
    assert block_side((0.80625, 0.80625), (1.0, 1.0), (4, 4), gen) == (4, 4)
    grid = (4, 8, 8)
    masks = sample_tube_masks(grid, 5, generator=mask_generator(seed=1, step=0, rank=0))
    union = union_of_blocks(masks.corners, masks.spatial_side, masks.temporal_length, grid)
    hidden = [[p for p in range(256) if union[i].flatten()[p]] for i in range(5)]
    seen = [[p for p in range(256) if not union[i].flatten()[p]] for i in range(5)]
    k, t = min(map(len, seen)), min(map(len, hidden))
    assert masks.context.tolist() == [s[:k] for s in seen]
    assert masks.targets.tolist() == [h[:t] for h in hidden]


def test_vjepa_reference_masks_share_one_size_draw() -> None:
    """V-JEPA seeds each mask's size generator with the same counter: both masks of a step
    draw the same three numbers (so the same aspect), whatever the process."""
    torch.manual_seed(0)
    encoder = VideoViTEncoder(arch="vit_small", img_size=32, num_frames=8, patch_size=4,
                              tubelet_size=2, embed_dim=32, depth=1, num_heads=2, drop_path=0.0,
                              emb_dim=32, pool_heads=2, proj_hidden=32, proj_dim=8, pool="mean",
                              with_proj=False)
    method = VJEPA(encoder=encoder, seed=4, predictor_width=16, predictor_depth=1,
                   predictor_heads=2)
    assert method.mask_law == "reference"
    grid = (4, 8, 8)
    for step in range(5):
        short, long = method.draw_masks(grid, 3, step=step)
        u = torch.rand(3, generator=size_generator(seed=4, step=step), dtype=torch.float64)
        a = 0.75 + 0.75 * float(u[2])
        for masks, scale in ((short, 0.15), (long, 0.7)):
            n = math.floor(64 * scale)
            want = tuple(max(1, min(8, round(math.sqrt(n * r)))) for r in (a, 1 / a))
            assert masks.spatial_side == want and masks.temporal_length == 4
    with pytest.raises(ValueError, match=r"^mask_law must be one of reference, levyjepa"):
        VJEPA(encoder=encoder, mask_law="v-jepa")


# ---- VICReg --------------------------------------------------------------------------------


def tiny_vit(seed: int = 0) -> ViTEncoder:
    torch.manual_seed(seed)
    return ViTEncoder(arch="vit_tiny_patch16_224", img_size=16, patch_size=4, embed_dim=32,
                      depth=1, num_heads=2, drop_path=0.0, emb_dim=32, pool_heads=2,
                      proj_hidden=32, proj_dim=8, pool="attention", with_proj=True)


def by_hand(proj: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The BatchNorm MLP in train mode, BatchNorm written out: ``(x - mean) / sqrt(var + eps)``
    with the biased variance of the rows given."""
    for layer in proj:
        if isinstance(layer, torch.nn.Linear):
            x = x @ layer.weight.T + (layer.bias if layer.bias is not None else 0)
        elif isinstance(layer, torch.nn.BatchNorm1d):
            mean, var = x.mean(0), x.var(0, unbiased=False)
            x = (x - mean) / torch.sqrt(var + layer.eps) * layer.weight + layer.bias
        elif isinstance(layer, torch.nn.ReLU):
            x = x.clamp_min(0)
        else:
            assert isinstance(layer, torch.nn.Dropout) and layer.p == 0
    return x


def test_vicreg_per_view_batchnorm_is_each_view_projected_alone() -> None:
    encoder = tiny_vit().train()
    x = torch.randn(6, 2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    per_view = VICReg()(encoder, [x], step=0)
    joint = VICReg(projector_batchnorm="joint")(encoder, [x], step=0)
    assert VICReg().projector_batchnorm == "per_view"
    emb = per_view.outputs["emb"]  # (N*V, E), row n*V + v; no BatchNorm before the projector
    torch.testing.assert_close(emb, joint.outputs["emb"])
    torch.testing.assert_close(per_view.outputs["tokens"], joint.outputs["tokens"])
    with torch.no_grad():
        views = emb.unflatten(0, (6, 2)).transpose(0, 1)  # (V, N, E)
        alone = torch.stack([by_hand(encoder.proj, views[v]) for v in range(2)])
        together = by_hand(encoder.proj, views.flatten(0, 1)).unflatten(0, (2, 6))
    torch.testing.assert_close(per_view.outputs["proj"].detach(), alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(joint.outputs["proj"].detach(), together, rtol=1e-4, atol=1e-5)
    assert float((alone - together).abs().max()) > 1e-2  # the two options differ
    want = VICReg().criterion(alone)["loss"]
    assert float(per_view.terms["loss"].detach()) == pytest.approx(float(want), rel=1e-4)
    with pytest.raises(ValueError, match=r"^projector_batchnorm must be one of per_view, joint, "
                                         r"got 'both'$"):
        VICReg(projector_batchnorm="both")


def _per_view_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from levyjepa.training.global_batchnorm import convert_to_global_batchnorm

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    encoder = tiny_vit().train()
    convert_to_global_batchnorm(encoder)
    x = torch.randn(8, 2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    result = VICReg()(encoder, [x[rank * 4:(rank + 1) * 4]], step=0)
    torch.save({"proj": result.outputs["proj"].detach(), "loss": result.terms["loss"].detach()},
               f"{out}.{rank}")
    dist.destroy_process_group()


def test_vicreg_per_view_on_two_processes_equals_one_process(tmp_path: Path) -> None:
    out = str(tmp_path / "vicreg")
    mp.spawn(_per_view_worker, args=(2, 29547, out), nprocs=2, join=True)
    parts = [torch.load(f"{out}.{r}") for r in range(2)]
    x = torch.randn(8, 2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    whole = VICReg()(tiny_vit().train(), [x], step=0)
    torch.testing.assert_close(torch.cat([p["proj"] for p in parts], 1),
                               whole.outputs["proj"].detach(), rtol=1e-4, atol=1e-5)
    for part in parts:  # the loss is of the gathered global batch
        assert float(part["loss"]) == pytest.approx(float(whole.terms["loss"].detach()), rel=1e-4)


# ---- recipes with measured results keep the law they were measured with --------------------


@pytest.mark.parametrize(("recipe", "key", "value"), [
    ("methods/ijepa", "mask_law", "levyjepa"),
    ("methods/ijepa_sigreg", "mask_law", "levyjepa"),
    ("methods/ijepa_levy2d", "mask_law", "levyjepa"),
    ("studies/image_ijepa", "mask_law", "levyjepa"),
    ("studies/image_ijepa_levy2d", "mask_law", "levyjepa"),
    ("video/vjepa", "mask_law", "levyjepa"),
    ("video/vjepa_levy3d", "mask_law", "levyjepa"),
    ("methods/vicreg", "projector_batchnorm", "joint"),
    ("methods/vicreg_levy2d", "projector_batchnorm", "joint"),
])
def test_measured_recipes_pin_their_law(recipe: str, key: str, value: str) -> None:
    assert load_recipe(ROOT / "recipes" / f"{recipe}.yaml").method[key] == value
