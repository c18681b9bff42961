"""Saccade JEPA (``saccade``): views moved by an exactly known motion, the inverse motion in the
cycle term, every loss term against a plain recomputation, the EMA teacher, a predictor without
shared weights, and its three CPU recipes trained, resumed, evaluated and exported."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_methods import tiny_encoder
from test_train import ROOT, _encoder_state, read_metrics, tiny

from levyjepa.config.recipe import load_recipe
from levyjepa.core.registry import ENCODERS
from levyjepa.eval.command import main as eval_main
from levyjepa.export import load_encoder
from levyjepa.export import main as export_main
from levyjepa.methods.saccade import SaccadeJEPA
from levyjepa.methods.saccade_views import (
    Motion,
    apply,
    centre_crop,
    compose,
    invert,
    render,
)
from levyjepa.training.loop import train
from levyjepa.training.trained import load_trained

RECIPES = ROOT / "recipes" / "methods"
SMALL = {"predictor_hidden": 16}


def _expected_view(image: np.ndarray, theta: float, tx: float, ty: float,
                   side: int) -> np.ndarray:
    """View 1 by its definition, pixel by pixel: the image at ``centre + R(theta) p + t``,
    rounded half up, clamped to the image (``image`` ``(C, H, W)``)."""
    _, h, w = image.shape
    half = (side - 1) / 2
    cx, cy = (w - side) // 2 + half, (h - side) // 2 + half
    out = np.zeros((image.shape[0], side, side), image.dtype)
    for i in range(side):
        for j in range(side):
            u, v = j - half, i - half
            x = cx + math.cos(theta) * u - math.sin(theta) * v + tx
            y = cy + math.sin(theta) * u + math.cos(theta) * v + ty
            col = min(max(math.floor(x + 0.5), 0), w - 1)
            row = min(max(math.floor(y + 0.5), 0), h - 1)
            out[:, i, j] = image[:, row, col]
    return out


def test_view_one_is_view_two_moved_by_the_drawn_motion() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(4, 2, 20, 23, generator=gen)  # not square: rows and columns differ
    theta = torch.tensor([0.03, -0.02, 0.3, 0.0], dtype=torch.float64)  # one large rotation
    shift = torch.tensor([[1.7, -2.2], [-3.1, 0.4], [0.5, 1.5], [0.0, 0.0]], dtype=torch.float64)
    side = 12
    moved = render(images, Motion(theta, shift), side)
    for n in range(4):
        want = _expected_view(images[n].numpy(), float(theta[n]), float(shift[n, 0]),
                              float(shift[n, 1]), side)
        np.testing.assert_array_equal(moved[n].numpy(), want)
    # the identity motion renders the centre crop (view 2) exactly
    torch.testing.assert_close(moved[3], centre_crop(images, side)[3], rtol=0, atol=0)
    # a whole-pixel translation is an exact shift of view 2 on their overlap
    tx, ty = 3, -2
    shifted = render(images, Motion(torch.zeros(4, dtype=torch.float64),
                                    torch.tensor([[tx, ty]] * 4, dtype=torch.float64)), side)
    centre = centre_crop(images, side)
    assert torch.equal(shifted[..., 2:, :side - 3], centre[..., :side - 2, 3:])
    assert not torch.equal(shifted, centre)


def test_the_method_swaps_views_and_inverts_the_motion() -> None:
    encoder = tiny_encoder("saccade")
    full = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    kept = SaccadeJEPA(encoder=encoder, swap_prob=0.0, **SMALL)
    swapped = SaccadeJEPA(encoder=encoder, swap_prob=1.0, **SMALL)
    a1, b1, h1, _ = kept.make_views(full, step=3)
    a2, b2, h2, x2 = swapped.make_views(full, step=3)
    assert a1.shape == (6, 3, 12, 12)  # crop 0.75 of 16 px
    assert torch.equal(b1, centre_crop(full, 12)) and torch.equal(a1, render(full, h1, 12))
    assert torch.equal(a2, b1) and torch.equal(b2, a1)  # same draws, views swapped
    inv = invert(h1)
    torch.testing.assert_close(h2.theta, inv.theta)
    torch.testing.assert_close(h2.shift, inv.shift)
    # every drawn motion within its ranges; the normalised inverse within [-1, 1]
    assert h1.theta.abs().max() <= math.radians(2.0)
    assert h1.shift.abs().max() <= 0.9 * (16 - 12) / 2
    assert x2.abs().max() <= 1.0
    with pytest.raises(ValueError, match=r"^method.crop=20 gives a 20 px view that does not fit "
                                         r"the 16x16 px input \(at most 16 px\)$"):
        SaccadeJEPA(encoder=encoder, crop=20, **SMALL).make_views(full, step=0)


def _rotate(theta: float, x: float, y: float) -> tuple[float, float]:
    return math.cos(theta) * x - math.sin(theta) * y, math.sin(theta) * x + math.cos(theta) * y


def test_a_motion_composed_with_its_inverse_is_the_identity() -> None:
    g = Motion(torch.tensor([0.03, -0.5], dtype=torch.float64),
               torch.tensor([[2.0, -1.0], [0.3, 4.0]], dtype=torch.float64))
    inv = invert(g)
    for n in range(2):  # g^{-1} = (-theta, -R(-theta) t), by hand
        rx, ry = _rotate(-float(g.theta[n]), float(g.shift[n, 0]), float(g.shift[n, 1]))
        assert float(inv.theta[n]) == pytest.approx(-float(g.theta[n]))
        assert inv.shift[n].tolist() == pytest.approx([-rx, -ry])
    points = torch.randn(2, 5, 2, dtype=torch.float64)
    for first, then in ((g, inv), (inv, g)):
        both = compose(then, first)
        torch.testing.assert_close(both.theta, torch.zeros(2, dtype=torch.float64))
        torch.testing.assert_close(both.shift, torch.zeros(2, 2, dtype=torch.float64))
        torch.testing.assert_close(apply(then, apply(first, points)), points)


def _nerf(x: float, freqs: int) -> list[float]:
    return ([math.sin(math.pi * 2 ** k * x) for k in range(freqs)]
            + [math.cos(math.pi * 2 ** k * x) for k in range(freqs)])


def _code(method: SaccadeJEPA, x: torch.Tensor) -> torch.Tensor:
    """The motion embedding by its formula: NeRF features (theta with 10 frequencies, then t_x
    and t_y with 4: all sines, then all cosines), then the linear layer."""
    rows = []
    for theta, tx, ty in x.tolist():
        tr = [_nerf(tx, 4), _nerf(ty, 4)]
        rows.append(_nerf(theta, 10) + tr[0][:4] + tr[1][:4] + tr[0][4:] + tr[1][4:])
    lin = method.motion_embedding.linear
    return torch.tensor(rows) @ lin.weight.T + lin.bias


def _normalised(h: Motion, *, max_shift: float) -> torch.Tensor:
    r = math.radians(2.0)
    s = max_shift * (math.cos(r) + math.sin(r))
    return torch.stack([h.theta / r, h.shift[:, 0] / s, h.shift[:, 1] / s], 1).float()


def _huber(a: torch.Tensor, b: torch.Tensor, delta: float) -> torch.Tensor:
    d = (a - b).abs()
    return torch.where(d < delta, 0.5 * d ** 2, delta * (d - 0.5 * delta)).mean()


def _vicreg(z: torch.Tensor) -> dict[str, float]:
    """VICReg (Bardes et al. 2022) of two views ``(2, N, K)`` by its formulas, with loops."""
    n, k = z.shape[1:]
    inv = float(((z[0] - z[1]) ** 2).mean())
    var = cov = 0.0
    for view in z.double():
        c = view - view.mean(0)
        for j in range(k):
            var += max(0.0, 1.0 - math.sqrt(float((c[:, j] ** 2).sum()) / (n - 1) + 1e-4)) / (2 * k)
            for m in range(k):
                if m != j:
                    cov += float((c[:, j] * c[:, m]).sum() / (n - 1)) ** 2 / k
    return {"inv": inv, "var": var, "cov": cov, "loss": 25 * inv + 25 * var + cov}


def test_the_loss_terms_against_a_plain_recomputation() -> None:
    encoder = tiny_encoder("saccade")
    method = SaccadeJEPA(encoder=encoder, huber_delta=0.05, cycle_coeff=0.5, **SMALL)
    full = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    calls: list[torch.Tensor] = []  # what the motion embedding is given, in order
    hook = method.motion_embedding.register_forward_pre_hook(
        lambda module, args: calls.append(args[0].detach().clone()))
    terms = {k: v.detach() for k, v in method(encoder, [full.unsqueeze(1)], step=5).terms.items()}
    hook.remove()
    inputs, targets, h, _ = method.make_views(full, step=5)  # the same draws
    with torch.no_grad():
        student = encoder(torch.stack([inputs, targets], 1))
        s_a = student.emb.view(6, 2, -1)[:, 0]
        z_b = method.teacher.encoder(targets.unsqueeze(1)).emb
        max_shift = 0.9 * (16 - 12) / 2
        x = _normalised(h, max_shift=max_shift)
        theta, sx, sy = h.theta, h.shift[:, 0], h.shift[:, 1]  # the inverse, by hand
        back_x = _normalised(Motion(-theta, -torch.stack(
            [torch.cos(theta) * sx + torch.sin(theta) * sy,
             -torch.sin(theta) * sx + torch.cos(theta) * sy], 1)), max_shift=max_shift)
        pred = method.predictor(s_a + _code(method, x))
        back = method.predictor(pred + _code(method, back_x))
    # the embedding saw the motion, then its inverse (not its negation: theta != 0)
    assert len(calls) == 2
    torch.testing.assert_close(calls[0], x)
    torch.testing.assert_close(calls[1], back_x)
    negated = -x
    assert (calls[1] - negated).abs().max() > 1e-4
    assert float(terms["pred"]) == pytest.approx(float(_huber(pred, z_b, 0.05)), rel=1e-5)
    assert float(terms["cycle"]) == pytest.approx(float(((back - s_a) ** 2).mean()), rel=1e-5)
    want = _vicreg(student.proj)
    for key in ("inv", "var", "cov"):
        assert float(terms[key]) == pytest.approx(want[key], rel=1e-4, abs=1e-7), key
    assert float(terms["vicreg"]) == pytest.approx(want["loss"], rel=1e-4)
    total = float(_huber(pred, z_b, 0.05)) + 0.5 * float(((back - s_a) ** 2).mean()) + want["loss"]
    assert float(terms["loss"]) == pytest.approx(total, rel=1e-4)


def test_predicting_the_transform_regresses_the_normalised_motion() -> None:
    encoder = tiny_encoder("saccade")
    method = SaccadeJEPA(encoder=encoder, target="transform", **SMALL)
    assert method.motion_embedding is None
    full = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    terms = {k: v.detach() for k, v in method(encoder, [full.unsqueeze(1)], step=1).terms.items()}
    assert "cycle" not in terms
    inputs, targets, h, _ = method.make_views(full, step=1)
    with torch.no_grad():
        s_a = encoder(torch.stack([inputs, targets], 1)).emb.view(6, 2, -1)[:, 0]
        z_b = method.teacher.encoder(targets.unsqueeze(1)).emb
        pred = method.predictor(torch.cat([s_a, z_b], 1))
    want = _huber(pred, _normalised(h, max_shift=0.9 * (16 - 12) / 2), 1.0)
    assert float(terms["pred"]) == pytest.approx(float(want), rel=1e-5)


def test_the_teacher_gets_no_gradient_and_moves_by_ema() -> None:
    encoder = tiny_encoder("saccade")
    method = SaccadeJEPA(encoder=encoder, momentum=(0.9, 0.99), **SMALL)
    views = [torch.randn(6, 1, 3, 16, 16, generator=torch.Generator().manual_seed(4))]
    method(encoder, views, step=0).terms["loss"].backward()
    assert all(p.grad is None for p in method.teacher.parameters())
    assert all(not p.requires_grad for p in method.teacher.parameters())
    assert encoder.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    with torch.no_grad():
        for p in encoder.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad
    for step, total, m in ((1, 5, 0.9), (3, 5, 0.9 + 0.09 * 2 / 4)):  # linear in the step
        old = {k: v.clone() for k, v in method.teacher.encoder.named_parameters()}
        method.after_step(encoder, step=step, total_steps=total)
        student = dict(encoder.named_parameters())
        for key, value in method.teacher.encoder.named_parameters():
            torch.testing.assert_close(value, m * old[key] + (1 - m) * student[key].detach())
    assert SaccadeJEPA.evaluated_key({}) == "method.teacher.encoder"
    assert method.evaluated_encoder(encoder) is method.teacher.encoder


def test_the_predictor_layers_are_distinct_parameters() -> None:
    method = SaccadeJEPA(encoder=tiny_encoder("saccade"), predictor_depth=4, **SMALL)
    linears = [m for m in method.predictor if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4
    hidden = linears[1:-1]  # the two 16 -> 16 layers: shapes alone would allow sharing
    assert hidden[0].weight.shape == hidden[1].weight.shape
    assert hidden[0] is not hidden[1]
    assert hidden[0].weight.data_ptr() != hidden[1].weight.data_ptr()
    assert not torch.equal(hidden[0].weight, hidden[1].weight)
    n_params = sum(p.numel() for p in method.predictor.parameters())  # shared ones count once
    assert n_params == (32 * 16 + 16) + 2 * (16 * 16 + 16) + (16 * 32 + 32)
    with torch.no_grad():
        hidden[0].weight.zero_()
    assert hidden[1].weight.abs().sum() > 0


def _run_args(recipe: Path, out: Path, *extra: str) -> list[str]:
    """The tiny overrides (16 px images, 12 px views) the recipe's encoder takes."""
    takes = ENCODERS.parameters(load_recipe(recipe).encoder.name)
    args = tiny(out, "views.global_views=1", "data.train_size=8", "trainer.epochs=2",
                "trainer.eval_every=0", "log.every=1", *extra)
    return [a for a in args if not a.startswith("method.sigreg.")
            and (not a.startswith("encoder.") or a.partition("=")[0][8:] in takes)]


def _train_resume_evaluate_export(name: str, tmp_path: Path) -> None:
    recipe = RECIPES / f"saccade_{name}.yaml"
    straight, parted = tmp_path / "straight", tmp_path / "parted"
    train(load_recipe(recipe, _run_args(recipe, straight, "trainer.max_steps=2")))
    train(load_recipe(recipe, _run_args(recipe, parted, "trainer.max_steps=1")))
    train(load_recipe(recipe, _run_args(recipe, parted, "trainer.max_steps=2", "resume=auto")))
    a = [e for e in read_metrics(straight) if "train/loss" in e]
    b = [e for e in read_metrics(parted) if "train/loss" in e]
    assert [e["step"] for e in a] == [e["step"] for e in b] == [1, 2]
    for ea, eb in zip(a, b):
        assert {"train/pred", "train/cycle", "train/inv", "train/var", "train/cov",
                "train/within"} <= set(ea)
        for key in ea:
            if key.startswith("train/"):
                assert eb[key] == pytest.approx(ea[key], rel=1e-6, abs=1e-9), (ea["step"], key)
    sa, sb = _encoder_state(straight), _encoder_state(parted)
    assert sa.keys() == sb.keys()
    assert any(k.startswith("method.teacher.encoder.") for k in sa)
    assert any(k.startswith("method.predictor.") for k in sa)
    for key in sa:
        torch.testing.assert_close(sb[key], sa[key], rtol=1e-6, atol=1e-7)
    # evaluation and export read the teacher, at the full 16 px
    loaded = load_trained(parted)
    assert loaded.weights_key == "method.teacher.encoder"
    assert eval_main([str(parted), "task=classification", "progress=false"]) == 0
    scores = json.loads((parted / "eval.json").read_text())
    assert 0.0 <= scores["classification/knn_top1"] <= 1.0 and scores["step"] == 2
    assert export_main([str(parted)]) == 0
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    teacher = {k[len("method.teacher.encoder."):]: v for k, v in sb.items()
               if k.startswith("method.teacher.encoder.")}
    exported = load_encoder(parted / "export").eval()
    for key, value in exported.state_dict().items():
        torch.testing.assert_close(value, teacher[key])
    with torch.no_grad():
        assert torch.equal(exported.forward_tokens(images),
                           loaded.encoder.eval().forward_tokens(images))


def test_the_convnet_recipe_trains_resumes_evaluates_and_exports(tmp_path: Path) -> None:
    _train_resume_evaluate_export("convnet", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit", "levy2d"])
def test_the_vit_recipes_train_resume_evaluate_and_export(name: str, tmp_path: Path) -> None:
    _train_resume_evaluate_export(name, tmp_path)
