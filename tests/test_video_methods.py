"""V-JEPA and HJEPA on clips: tube masks as specified, the masked video forward (equal to the
restricted full forward, cheaper), V-JEPA's loss against an independent computation, HJEPA's
windows, state loss and diagnostics, bf16 autocast, and every parameter trained."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_methods import SECTIONS, tiny_encoder
from test_perf_benchmarks import bench

import levyjepa.methods.hjepa as hjepa_module
import levyjepa.methods.vjepa as vjepa_module
from levyjepa.encoders.video_vit import VideoViTEncoder
from levyjepa.methods.block_masks import block_side, mask_generator
from levyjepa.methods.hamiltonian import leapfrog
from levyjepa.methods.hjepa import HJEPA, participation_ratio
from levyjepa.methods.tube_masks import (
    expected_masked_fraction,
    sample_tube_masks,
    union_of_blocks,
)
from levyjepa.methods.vjepa import VJEPA


def clips(n: int = 4, seed: int = 1) -> list[torch.Tensor]:
    """``(n, 1, 3, 8, 16, 16)``: one view of ``n`` clips of 8 frames (an 8x4x4 grid)."""
    return [torch.randn(n, 1, 3, 8, 16, 16, generator=torch.Generator().manual_seed(seed))]


# ---- tube masks, levyjepa law (the reference law: tests/test_mask_laws.py) ------------------


@pytest.mark.parametrize(("blocks", "scale"), [(8, 0.15), (2, 0.7)])
def test_tube_masks_have_the_specified_blocks_through_the_whole_clip(blocks: int,
                                                                      scale: float) -> None:
    grid, capped = (8, 16, 16), False
    for step in range(20):
        gen = mask_generator(seed=0, step=step, rank=0)
        masks = sample_tube_masks(grid, 6, generator=gen, blocks=blocks, law="levyjepa",
                                  spatial_scale=(scale, scale), min_keep=10)
        replay = block_side((scale, scale), (0.75, 1.5), grid[1:],
                            mask_generator(seed=0, step=step, rank=0))
        h, w = masks.spatial_side
        # the side: block_side's area and aspect formula, at most the grid's side minus 1
        assert (h, w) == (min(replay[0], 15), min(replay[1], 15))
        capped |= replay[0] == 16 or replay[1] == 16
        assert abs(h * w - scale * 256) <= h + w  # area within rounding of scale * H'W'
        assert 0.75 * (1 - 1 / w) <= h / w <= 1.5 * (1 + 1 / w)
        assert masks.temporal_length == 8 and masks.corners.shape == (6, blocks, 3)
        assert (masks.corners[..., 0] == 0).all()  # every tube starts at the first step
        union = union_of_blocks(masks.corners, masks.spatial_side, 8, grid)
        assert (union == union[:, :1]).all()  # the same spatial mask in every frame
        flat = union.flatten(1)
        assert flat.gather(1, masks.targets).all()  # targets: masked tubelets
        assert not flat.gather(1, masks.context).any()  # context: visible ones only
        assert masks.context.shape[1] == int((~flat).sum(1).min()) >= 10
        assert masks.targets.shape[1] == int(flat.sum(1).min())
        assert (masks.context.diff(1) > 0).all() and (masks.targets.diff(1) > 0).all()
    assert capped == (scale == 0.7)  # the long-range blocks reach the cap


def test_masked_fraction_matches_independent_placement() -> None:
    """Without redraws (min_keep 0) the mean masked fraction of 8 blocks of 0.15 is the value
    of independent uniform placement, within 4 standard errors over 2,400 clips."""
    grid, fractions, side = (4, 8, 8), [], None
    for step in range(300):
        masks = sample_tube_masks(grid, 8, generator=mask_generator(seed=3, step=step, rank=0),
                                  blocks=8, spatial_scale=(0.15, 0.15), aspect=(1.0, 1.0),
                                  min_keep=0, law="levyjepa")
        side = masks.spatial_side
        union = union_of_blocks(masks.corners, side, masks.temporal_length, grid)
        fractions += union.flatten(1).float().mean(1).tolist()
    assert side == (3, 3)  # aspect 1: round(sqrt(9.6)) on each side, every batch
    values = torch.tensor(fractions, dtype=torch.float64)
    expected = expected_masked_fraction(side, grid[1:], 8)
    assert 0.55 < expected < 0.7
    assert abs(float(values.mean()) - expected) < 4 * float(values.std()) / math.sqrt(len(values))


def test_masks_follow_seed_step_and_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = tiny_encoder("vjepa")
    method = VJEPA(encoder=encoder, seed=0, **SECTIONS["vjepa"])
    first = method.draw_masks((8, 4, 4), 6, step=3)
    again = method.draw_masks((8, 4, 4), 6, step=3)
    assert len(first) == 2  # V-JEPA's short-range and long-range masks
    assert all(torch.equal(a.context, b.context) and torch.equal(a.targets, b.targets)
               for a, b in zip(first, again))
    later = method.draw_masks((8, 4, 4), 6, step=4)
    assert not all(torch.equal(a.targets, b.targets) for a, b in zip(first, later))
    monkeypatch.setattr(vjepa_module, "rank", lambda: 1)
    other = method.draw_masks((8, 4, 4), 6, step=3)
    assert not all(torch.equal(a.targets, b.targets) for a, b in zip(first, other))


def test_a_mask_that_leaves_no_context_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"^tube masks: 2 blocks of 3x3 patches over 8 steps "
                                         r"leave fewer than min_keep=100 context tubelets of "
                                         r"a 8x4x4 grid after 20 placements"):
        sample_tube_masks((8, 4, 4), 2, generator=torch.Generator().manual_seed(0), blocks=2,
                          spatial_scale=(1.0, 1.0), aspect=(1.0, 1.0), min_keep=100,
                          law="levyjepa")


# ---- the masked video forward ---------------------------------------------------------------


def _video_vit() -> VideoViTEncoder:
    torch.manual_seed(0)
    return VideoViTEncoder(arch="vit_small", img_size=32, num_frames=8, patch_size=4,
                           tubelet_size=1, embed_dim=64, depth=2, num_heads=2, drop_path=0.0,
                           emb_dim=64, pool="mean", with_proj=False,
                           with_tokens_proj=False).eval()


def test_masked_forward_is_the_full_forward_restricted_to_the_kept_tubelets() -> None:
    encoder = _video_vit()
    x = clips()[0][:2, 0].repeat(1, 1, 1, 2, 2)  # (2, 3, 8, 32, 32)
    keep = torch.stack([torch.arange(0, 512, 3), torch.arange(1, 512, 3)])
    out = encoder.forward_masked(x, keep)
    embedded = encoder._embedded(x).flatten(1, 3)
    for row in range(2):  # the blocks on the kept tokens alone: attention sees nothing else
        alone = encoder.norm(encoder.blocks(embedded[row:row + 1, keep[row]]))
        torch.testing.assert_close(out[row:row + 1], alone)
    full = encoder.forward_tokens(x).flatten(1, 3)
    assert not torch.allclose(out[0], full[0, keep[0]], atol=1e-3)  # the dropped ones mattered
    # all tubelets kept: the full forward
    every = torch.arange(512).expand(2, -1)
    torch.testing.assert_close(encoder.forward_masked(x, every), full)


def test_masked_forward_cost_falls_with_the_masking_ratio() -> None:
    encoder = _video_vit()
    x = torch.randn(1, 3, 8, 32, 32)

    def flops(fn) -> int:
        with bench("common").flop_counter() as counter:  # CPU attention counted too
            fn()
        return counter.get_total_flops()

    full = flops(lambda: encoder.forward_tokens(x))
    ratios = [flops(lambda k=k: encoder.forward_masked(x, torch.randperm(512)[:k].sort().values
                                                        .unsqueeze(0))) / full
              for k in (384, 256, 128)]  # 75%, 50%, 25% kept
    embed = flops(lambda: encoder.patch_embed(x)) / full  # always on the whole clip
    assert ratios[0] > ratios[1] > ratios[2]
    # linear layers fall with the tokens kept, attention with their square, the embedding
    # not at all: below the kept fraction, above its square
    for ratio, kept in zip(ratios, (0.75, 0.5, 0.25)):
        assert kept ** 2 < ratio < kept * (1 - embed) + embed, (ratio, kept, embed)
    assert ratios[2] < 0.2  # 25% kept: attention dominates this 512-token, 64-wide model


def test_video_vit_mean_pool_needs_emb_dim_to_be_the_width() -> None:
    with pytest.raises(ValueError, match=r"emb_dim=32 must equal the token width "
                                         r"embed_dim=64 with pool: mean"):
        VideoViTEncoder(arch="vit_small", img_size=32, num_frames=8, patch_size=4, tubelet_size=1,
            embed_dim=64, depth=1, num_heads=2, emb_dim=32, pool="mean")
    with pytest.raises(ValueError, match=r"pool must be one of attention, mean, got 'max'"):
        VideoViTEncoder(pool="max")


# ---- V-JEPA ---------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_exp", [1.0, 2.0])
def test_vjepa_loss_is_its_formula_on_the_layer_normed_teacher_targets(loss_exp: float) -> None:
    """pred_loss = mean over masks of mean |pred - LN(teacher tokens)| ** p / p, computed again
    from the method's masks, its predictor and the two encoders."""
    encoder = tiny_encoder("vjepa")
    method = VJEPA(encoder=encoder, seed=0, loss_exp=loss_exp, **SECTIONS["vjepa"])
    with torch.no_grad():  # make the teacher differ from the student
        for p in method.teacher.parameters():
            p.add_(0.01 * torch.randn_like(p))
    views = clips()
    terms = method(encoder, views, step=5).terms
    x = views[0].flatten(0, 1)
    grid = (8, 4, 4)
    target_field = F.layer_norm(method.teacher.encoder.forward_tokens(x).flatten(1, 3), (32,))
    losses = []
    for masks in method.draw_masks(grid, 4, step=5):
        target = torch.stack([target_field[i, masks.targets[i]] for i in range(4)])
        context = encoder.forward_masked(x, masks.context)
        pred = method.predictor(context, masks.context, masks.targets[:, None], grid)[:, 0]
        losses.append(((pred - target).abs() ** loss_exp).mean() / loss_exp)
    want = float(sum(losses).detach()) / len(losses)
    assert float(terms["pred_loss"].detach()) == pytest.approx(want, rel=1e-5)
    assert float(terms["loss"].detach()) == pytest.approx(want, rel=1e-5)


def test_vjepa_teacher_gets_no_gradient_and_the_rest_trains() -> None:
    encoder = tiny_encoder("vjepa")
    method = VJEPA(encoder=encoder, seed=0, **SECTIONS["vjepa"])
    out = method(encoder, clips(), step=0)
    out.terms["loss"].backward()
    assert all(p.grad is None for p in method.teacher.parameters())
    assert all(p.grad is not None for p in method.predictor.parameters())
    assert all(p.grad is not None for n, p in encoder.named_parameters()
               if not n.startswith("tokens_proj."))  # built here, read by no prior
    assert out.outputs["emb"].shape == (4, 32) and not out.outputs["emb"].requires_grad
    assert method.evaluated_encoder(encoder) is method.teacher.encoder


def test_vjepa_without_teacher_needs_sigreg_and_trains_through_the_targets() -> None:
    encoder = tiny_encoder("vjepa")
    with pytest.raises(ValueError, match="teacher: none needs sigreg"):
        VJEPA(encoder=encoder, teacher="none", **SECTIONS["vjepa"])
    method = VJEPA(encoder=encoder, teacher="none", sigreg={"name": "sigreg", "slices": 16},
                   lamb=0.5, **SECTIONS["vjepa"])
    terms = method(encoder, clips(), step=0).terms
    values = {k: float(v.detach()) for k, v in terms.items()}
    assert values["loss"] == pytest.approx(
        0.5 * values["pred_loss"] + 0.5 * values["sigreg"], rel=1e-6)
    terms["loss"].backward()
    assert all(p.grad is not None for p in method.sigreg_proj.parameters())
    assert method.evaluated_encoder(encoder) is encoder


@pytest.mark.parametrize(("section", "message"), [
    ({"masks": []}, "masks must list at least one mask"),
    ({"masks": [{"blocks": 0}]}, r"masks\[0\].blocks must be a positive integer"),
    ({"masks": [{"blocks": 2, "scale": 0.1}]}, r"masks\[0\] must be a mapping of blocks"),
    ({"loss_exp": 0}, "loss_exp must be > 0"),
    ({"teacher": "student"}, "teacher must be one of ema, none"),
])
def test_bad_vjepa_settings_are_refused(section: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VJEPA(encoder=tiny_encoder("vjepa"), **{**SECTIONS["vjepa"], **section})


def test_video_methods_refuse_an_image_encoder() -> None:
    image = tiny_encoder("ijepa")
    with pytest.raises(ValueError, match=r"vjepa needs a video encoder .*video_vit"):
        VJEPA(encoder=image)
    with pytest.raises(ValueError, match=r"hjepa needs a video encoder .*video_vit"):
        HJEPA(encoder=image)


# ---- HJEPA ----------------------------------------------------------------------------------


def _hjepa(**section: object) -> tuple[torch.nn.Module, HJEPA]:
    encoder = tiny_encoder("hjepa")
    return encoder, HJEPA(encoder=encoder, seed=0, **{**SECTIONS["hjepa"], **section})


def test_hjepa_windows_fit_the_clip_and_the_target_comes_later() -> None:
    _, method = _hjepa(window=2, horizon=[1, 5])
    grid = (8, 4, 4)
    seen = set()
    for step in range(50):
        t0, k = method.draw_windows(grid, 16, step=step)
        assert (k >= 1).all() and (k <= 5).all() and (t0 >= 0).all()
        assert (t0 + k + 2 <= 8).all()  # the target window ends inside the clip
        seen |= set(zip(t0.tolist(), k.tolist()))
        index = method.window_index(t0 + k, grid)
        times = index // 16  # raster (t * H' + h) * W' + w
        assert (times >= (t0 + k)[:, None]).all() and (times < (t0 + k + 2)[:, None]).all()
        assert index.shape == (16, 2 * 16) and (index.diff(1) == 1).all()
    # every (start, horizon) that fits is drawn: k = 1..5 with t0 = 0..(8 - 2 - k)
    assert seen == {(t, k) for k in range(1, 6) for t in range(8 - 2 - k + 1)}


def test_hjepa_context_never_sees_the_frames_it_predicts() -> None:
    encoder, method = _hjepa()
    x = clips(2)[0].flatten(0, 1)
    t0 = torch.tensor([0, 1])
    keep = method.window_index(t0, (8, 4, 4))
    before = encoder.forward_masked(x, keep)
    changed = x.clone()
    changed[:, :, 3:] = torch.randn_like(changed[:, :, 3:])  # every frame after both windows
    torch.testing.assert_close(encoder.forward_masked(changed, keep), before)


@pytest.mark.parametrize("match", ["q", "p", "qp"])
def test_hjepa_loss_integrates_the_context_state_to_the_target_state(match: str) -> None:
    encoder, method = _hjepa(match=match, lamb=0.25)
    views = clips()
    terms = method(encoder, views, step=2).terms
    x = views[0].flatten(0, 1)
    grid = (8, 4, 4)
    t0, k = method.draw_windows(grid, 4, step=2)
    states = []
    for start in (t0, t0 + k):
        tokens = encoder.forward_masked(x, method.window_index(start, grid))
        states.append(tokens.mean(1))
    state = method.state_proj(torch.cat(states)).unflatten(0, (2, 4))
    q0, p0 = state[0].chunk(2, -1)
    path = leapfrog(method.potential, q0, p0, dt=0.1, steps=k * 4)  # the recipe's dt, steps
    q1, p1 = state[1].chunk(2, -1)
    pred, target = {"q": (path.q, q1), "p": (path.p, p1),
                    "qp": (torch.cat([path.q, path.p], -1), state[1])}[match]
    want = (pred - target).square().mean()
    assert float(terms["pred_loss"].detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    assert float(terms["loss"].detach()) == pytest.approx(
        0.75 * float(want.detach()) + 0.25 * float(terms["sigreg"].detach()), rel=1e-5)
    assert 0 <= float(terms["energy_drift"]) < 1e-2  # leapfrog, no damping: H is conserved


@pytest.mark.parametrize("match", ["q", "p", "qp"])
def test_every_hjepa_parameter_gets_a_gradient(match: str) -> None:
    """What distributed training needs: no parameter left without a gradient, whatever is
    matched (the potential trains through the integration's second-order graph)."""
    encoder, method = _hjepa(match=match)
    method(encoder, clips(), step=0).terms["loss"].backward()
    # the last layer of the potential starts at zero: its inner layers' gradients are zero
    # at the first step, but they exist; after that they are non-zero
    missing = [n for n, p in [*encoder.named_parameters(), *method.named_parameters()]
               if p.grad is None and not n.startswith("tokens_proj.")]  # read by no prior
    assert missing == []
    assert float(method.potential.mlp[-1].weight.grad.abs().sum()) > 0


def test_hjepa_under_bf16_autocast() -> None:
    encoder, method = _hjepa()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = method(encoder, clips(), step=0)
    assert all(t.dtype == torch.float32 and torch.isfinite(t) for t in out.terms.values())
    out.terms["loss"].backward()
    assert method.potential.mlp[-1].weight.grad is not None


def test_participation_ratio_golden_values() -> None:
    # four orthogonal directions with equal variance: an isotropic cloud of rank 4
    x = torch.cat([torch.eye(4), -torch.eye(4)]).double()
    assert float(participation_ratio(x)) == pytest.approx(4.0)
    line = torch.linspace(-1, 1, 9).double()[:, None] * torch.tensor([[1.0, 2.0, -1.0]]).double()
    assert float(participation_ratio(line)) == pytest.approx(1.0)
    # variances 1 and 3 on two axes: (1 + 3)^2 / (1 + 9) = 1.6
    y = torch.cat([torch.eye(2), -torch.eye(2)]).double() * torch.tensor([1.0, math.sqrt(3)])
    assert float(participation_ratio(y.double())) == pytest.approx(1.6)


def test_hjepa_diagnostics_are_the_seed_quantities(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder, method = _hjepa()
    terms = method(encoder, clips(6), step=1).terms
    for name in ("q_pr", "p_pr", "q_std_min", "q2", "p2", "V_var", "energy_drift"):
        assert terms[name].ndim == 0 and not terms[name].requires_grad
    assert 1.0 <= float(terms["q_pr"]) <= 4.0 and 1.0 <= float(terms["p_pr"]) <= 4.0
    assert float(terms["q2"]) > 0 and float(terms["q_std_min"]) > 0
    # windows follow the rank too
    first = method.draw_windows((8, 4, 4), 32, step=1)
    monkeypatch.setattr(hjepa_module, "rank", lambda: 1)
    other = method.draw_windows((8, 4, 4), 32, step=1)
    assert not (torch.equal(first[0], other[0]) and torch.equal(first[1], other[1]))


@pytest.mark.parametrize(("section", "message"), [
    ({"window": 7, "horizon": [2, 3]}, r"window=7 plus the shortest horizon 2 exceeds"),
    ({"horizon": [0, 2]}, r"horizon must be \[low, high\] with 1 <= low <= high"),
    ({"match": "pq"}, "match must be one of q, p, qp"),
    ({"dt": 0.0}, "dt must be > 0"),
    ({"damping": -0.1}, "damping must be >= 0"),
])
def test_bad_hjepa_settings_are_refused(section: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _hjepa(**section)


@pytest.mark.slow
def test_hjepa_trains_under_torch_compile(tmp_path) -> None:
    """trainer.compile=true (inductor; a C++ compiler on CPU): the integrator is excluded from
    compilation (torch.compiler.disable), the rest of the model compiles; 2 steps, finite
    terms, and the same first loss as the eager run (compiled kernels round differently)."""
    from test_methods import recipe_of, run_args
    from test_train import read_metrics

    from levyjepa.config.recipe import load_recipe
    from levyjepa.training.loop import train

    losses = []
    for compiled in ("false", "true"):
        run = tmp_path / compiled
        summary = train(load_recipe(recipe_of("hjepa"), run_args(
            "hjepa", run, "trainer.max_steps=2", "log.every=1", f"trainer.compile={compiled}")))
        assert summary["steps"] == 2
        events = [e for e in read_metrics(run) if "train/loss" in e]
        assert all(math.isfinite(e["train/loss"]) for e in events)
        losses.append(events[0]["train/loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
