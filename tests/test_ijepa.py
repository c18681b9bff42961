"""I-JEPA: the EMA teacher against its formula, the predictor, the loss against an independent
computation, masks per (seed, step, rank), teacher none with SIGReg, and the evaluated encoder
(the teacher) picked by the online probe, levyjepa.eval's loader and export."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from test_methods import QUICKSTART, SECTIONS, method_overrides, tiny_encoder
from test_train import _encoder_state, read_metrics, tiny

import levyjepa.methods.ijepa as ijepa_module
from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.export import export, load_encoder
from levyjepa.methods.attached_priors import AttachedPriors
from levyjepa.methods.ema_teacher import EMATeacher, momentum_at
from levyjepa.methods.ijepa import IJEPA
from levyjepa.methods.jepa_predictor import JEPAPredictor, sincos_2d
from levyjepa.training.loop import train
from levyjepa.training.setup import build_run
from levyjepa.training.trained import load_trained

SMALL = SECTIONS["ijepa"]
IJEPA_RUN = [*method_overrides("ijepa"), "views.global_views=1"]


def views(n: int = 6, seed: int = 1) -> list[torch.Tensor]:
    return [torch.randn(n, 1, 3, 16, 16, generator=torch.Generator().manual_seed(seed))]


def test_momentum_rises_linearly_from_start_to_end_over_the_schedule() -> None:
    got = [momentum_at(s, 5, start=0.996, end=1.0) for s in range(1, 8)]
    want = [0.996, 0.997, 0.998, 0.999, 1.0, 1.0, 1.0]
    assert got == pytest.approx(want, abs=1e-12)
    assert momentum_at(1, 1, start=0.9, end=1.0) == 1.0


def test_ema_update_follows_its_formula_and_copies_buffers() -> None:
    student = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    teacher = EMATeacher(student)
    assert not any(p.requires_grad for p in teacher.parameters())
    before = {k: v.clone() for k, v in teacher.encoder.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    student.train()(torch.randn(8, 3))  # moves the running statistics
    teacher.update(student, momentum=0.9)
    for name, p in student.named_parameters():
        want = 0.9 * before[name] + 0.1 * p.detach()
        torch.testing.assert_close(dict(teacher.encoder.named_parameters())[name], want)
    for name, b in student.named_buffers():
        torch.testing.assert_close(dict(teacher.encoder.named_buffers())[name], b)
    teacher.train()
    assert not teacher.encoder.training  # the teacher never drops out
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        teacher.update(student, momentum=1.5)


def test_sincos_embedding_against_its_formula() -> None:
    pos = sincos_2d((3, 5), 8)
    assert pos.shape == (15, 8)
    row, col, k = 2, 3, 1  # position (2, 3) is raster index 13; frequency k of 2
    w = 10000.0 ** (-k / 2)
    want = [math.sin(row * w), math.cos(row * w), math.sin(col * w), math.cos(col * w)]
    got = pos[13].tolist()
    assert [got[1], got[3], got[5], got[7]] == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d((2, 2), 6)


def test_predictor_blocks_do_not_see_each_other() -> None:
    torch.manual_seed(0)
    pred = JEPAPredictor(in_dim=8, width=16, depth=2, heads=2).eval()
    context = torch.randn(2, 5, 8)
    context_idx = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    a = torch.tensor([[[10, 11], [12, 13]], [[10, 11], [14, 15]]])
    b = a.clone()
    b[:, 1] = torch.tensor([[20, 21], [22, 23]])  # another second block
    with torch.no_grad():
        out_a, out_b = (pred(context, context_idx, t, (5, 5)) for t in (a, b))
    assert out_a.shape == (2, 2, 2, 8)
    torch.testing.assert_close(out_a[:, 0], out_b[:, 0])  # the first block is unchanged
    assert not torch.allclose(out_a[:, 1], out_b[:, 1])


def test_pred_loss_is_smooth_l1_to_the_layer_normed_teacher_targets() -> None:
    encoder = tiny_encoder("ijepa").eval()
    method = IJEPA(encoder=encoder, seed=5, **SMALL).eval()
    batch = views()
    out = method(encoder, batch, step=3)
    # independently: the same masks, the teacher's full field, its targets, the predictions
    images = batch[0].flatten(0, 1)
    masks = method.draw_masks((4, 4), images.shape[0], step=3)
    with torch.no_grad():
        field = method.teacher.encoder.backbone.forward_features(images)[:, 1:]  # no cls
        targets = F.layer_norm(field, (32,))
        targets = torch.stack([targets[i, masks.targets[i]] for i in range(images.shape[0])])
        context = encoder.forward_masked(images, masks.context)
        pred = method.predictor(context, masks.context, masks.targets, (4, 4))
    want = F.smooth_l1_loss(pred, targets)
    assert float(out.terms["pred_loss"].detach()) == pytest.approx(float(want), rel=1e-5)
    assert out.terms["loss"] is out.terms["pred_loss"] or torch.equal(out.terms["loss"],
                                                                      out.terms["pred_loss"])
    h, w = out.outputs["pred_field"].shape[1:3]
    assert h * w == masks.targets.shape[-1] and out.outputs["pred_field"].shape[0] == 6 * 4
    torch.testing.assert_close(out.outputs["emb"], field.mean(1))  # the teacher's mean token


def test_masks_follow_seed_step_and_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = tiny_encoder("ijepa")
    method = IJEPA(encoder=encoder, seed=0, **SMALL)
    first = method.draw_masks((4, 4), 8, step=7)
    assert torch.equal(first.context, method.draw_masks((4, 4), 8, step=7).context)
    assert not torch.equal(first.targets, method.draw_masks((4, 4), 8, step=8).targets)
    monkeypatch.setattr(ijepa_module, "rank", lambda: 1)
    assert not torch.equal(first.targets, method.draw_masks((4, 4), 8, step=7).targets)


def test_the_teacher_gets_no_gradient_and_the_encoder_sees_only_context() -> None:
    encoder = tiny_encoder("ijepa")
    method = IJEPA(encoder=encoder, seed=0, **SMALL)
    method(encoder, views(), step=0).terms["loss"].backward()
    assert all(p.grad is None for p in method.teacher.parameters())
    assert all(p.grad is not None for p in method.predictor.parameters())
    assert encoder.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_teacher_none_trains_through_the_targets_with_sigreg() -> None:
    encoder = tiny_encoder("ijepa")
    method = IJEPA(encoder=encoder, seed=0, teacher="none", lamb=0.1,
                   sigreg={"name": "sigreg", "slices": 16}, **SMALL)
    assert method.teacher is None and method.evaluated_encoder(encoder) is encoder
    out = method(encoder, views(), step=0)
    want = 0.9 * out.terms["pred_loss"] + 0.1 * out.terms["sigreg"]
    assert float(out.terms["loss"].detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    # the targets carry gradient: the full forward's tokens are trained too
    full = torch.autograd.grad(out.terms["pred_loss"], encoder.backbone.pos_embed,
                               retain_graph=True)[0]
    assert full.abs().sum() > 0
    # SIGReg reads the method's projector of the pooled context tokens and predictions
    proj = torch.autograd.grad(out.terms["sigreg"], method.sigreg_proj[0].weight)[0]
    assert proj.abs().sum() > 0 and method.sigreg_proj[-2].out_features == 16
    with pytest.raises(ValueError, match="teacher: none needs sigreg"):
        IJEPA(encoder=encoder, teacher="none")
    with pytest.raises(ValueError, match="teacher must be one of ema, none, got 'emma'"):
        IJEPA(encoder=encoder, teacher="emma")


def test_a_levy_prior_on_the_predictor_field_trains_the_predictor() -> None:
    encoder = tiny_encoder("ijepa")
    method = IJEPA(encoder=encoder, seed=0, **SMALL)
    priors = AttachedPriors({"within": {"name": "levy2d", "input": "pred_field", "weight": 1.0}},
                            outputs=IJEPA.outputs, method="ijepa")
    batch = [torch.randn(4, 1, 3, 32, 32)]  # an 8x8 grid: target blocks are 3-4 patches a side
    out = method(encoder, batch, step=0)
    assert min(out.outputs["pred_field"].shape[1:3]) >= 3
    terms = priors(out.terms, out.outputs, step=0)
    grad = torch.autograd.grad(terms["within"], method.predictor.out.weight)[0]
    assert torch.isfinite(terms["within"]) and grad.abs().sum() > 0


def test_ijepa_refuses_an_attention_pool_encoder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^method 'ijepa' needs encoder.pool=mean; encoder "
                                          r"'ViTEncoder' pools with 'attention'$"):
        train(load_recipe(QUICKSTART, tiny(tmp_path, "method={name: ijepa}",
                                           "views.local_views=0")))


def test_teacher_is_not_optimised_is_checkpointed_and_is_what_eval_and_export_read(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = tiny(run_dir, *IJEPA_RUN, "trainer.max_steps=1", "trainer.epochs=3")
    cfg = load_recipe(QUICKSTART, overrides)
    run = build_run(cfg)
    optimised = {id(p) for g in run.optimizer.param_groups for p in g["params"]}
    method = run.pretrainer.method
    assert not any(id(p) in optimised for p in method.teacher.parameters())
    assert all(id(p) in optimised for p in method.predictor.parameters())
    run.accelerator.end_training()
    train(load_recipe(QUICKSTART, overrides + ["overwrite=true"]))
    state = _encoder_state(run_dir)
    student = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    teacher = {k[len("method.teacher.encoder."):]: v for k, v in state.items()
               if k.startswith("method.teacher.encoder.")}
    assert teacher.keys() == student.keys() and student
    # one step: teacher = 0.996 * initial + 0.004 * student (the first momentum of 0.996 -> 1)
    initial = load_trained(run_dir, untrained=True).encoder.state_dict()
    moved = 0
    for key, value in teacher.items():
        want = 0.996 * initial[key] + 0.004 * student[key]
        torch.testing.assert_close(value, want, rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(student[key], value))
    assert moved > 0
    loaded = load_trained(run_dir)
    assert loaded.weights_key == "method.teacher.encoder"
    for key, value in loaded.encoder.state_dict().items():
        torch.testing.assert_close(value, teacher[key])
    exported = export(run_dir)
    weights = load_file(str(exported / "encoder.safetensors"))
    torch.testing.assert_close(weights["backbone.pos_embed"], teacher["backbone.pos_embed"])
    again = load_encoder(exported)
    assert again.proj is None and again.pool == "mean"
    # the online probe's test accuracy reads the teacher too
    assert run.pretrainer.method.evaluated_encoder(run.pretrainer.encoder) is method.teacher.encoder
    assert any("test/acc" in e for e in read_metrics(run_dir))


def test_teacher_none_evaluates_the_trained_encoder(tmp_path: Path) -> None:
    run_dir = tmp_path / "none"
    train(load_recipe(QUICKSTART, tiny(run_dir, *IJEPA_RUN, "method.teacher=none",
                                       "method.sigreg={name: sigreg, slices: 16}",
                                       "trainer.max_steps=1")))
    assert not any(k.startswith("method.teacher") for k in _encoder_state(run_dir))
    assert load_trained(run_dir).weights_key == "encoder"
    assert {"train/pred_loss", "train/sigreg"} <= set(read_metrics(run_dir)[0])


@pytest.mark.parametrize("teacher", ["ema", "none"])
def test_ijepa_under_bf16_autocast(teacher: str) -> None:
    """The loop's GPU precision, on the CPU: the encoder and predictor run in bfloat16, the
    loss, SIGReg and its projector in float32, and the loss backpropagates."""
    encoder = tiny_encoder("ijepa")
    extra = {} if teacher == "ema" else {"sigreg": {"name": "sigreg", "slices": 16}}
    method = IJEPA(encoder=encoder, seed=0, teacher=teacher, **extra, **SMALL)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = method(encoder, views(), step=0)
    assert out.outputs["pred_field"].dtype == torch.bfloat16
    assert all(t.dtype == torch.float32 and torch.isfinite(t) for t in out.terms.values())
    out.terms["loss"].backward()
    assert encoder.backbone.patch_embed.proj.weight.grad is not None
