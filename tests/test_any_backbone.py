"""Any backbone in, any format out: a ResNet, a ConvNeXt and a timm ViT built through the recipe
train 2 steps with LeJEPA + SIGReg + the Lévy 2D prior on their field, resume exactly (1 step,
stop, resume to 2 against 2 straight), evaluate, export;
timm alone rebuilds the exported backbone with the run's features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from test_train import _encoder_state, read_metrics
from tiny_overrides import QUIET_LOG

from levyjepa.config.recipe import load_recipe
from levyjepa.eval.command import main as eval_main
from levyjepa.export import load_encoder
from levyjepa.export import main as export_main
from levyjepa.training.loop import train
from levyjepa.training.trained import load_trained

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
HEADS = "pool_heads: 2, emb_dim: 16, proj_hidden: 32, tokens_proj_hidden: 16"
# ImageNet stems (a CIFAR stem has no plain timm equivalent to export to): a 3x3 field at 96 px
BACKBONES = {
    "resnet18": (96, f"{{name: timm, arch: resnet18, img_size: 96, {HEADS}}}"),
    "convnext_atto": (96, f"{{name: timm, arch: convnext_atto, img_size: 96, {HEADS}}}"),
    "vit_tiny": (32, "{name: timm, arch: vit_tiny_patch16_224, img_size: 32, model_args: "
                     f"{{patch_size: 8, depth: 2}}, {HEADS}}}"),
}


def _overrides(size: int, encoder: str, out_dir: Path, *extra: str) -> list[str]:
    return ["data.batch_size=4", "data.workers=0", f"data.size={size}", "data.train_size=12",
            "data.test_size=8", "views.local_views=0", "method.sigreg.slices=16",
            f"encoder={encoder}", "trainer.epochs=2", "trainer.eval_every=0",
            f"out_dir={out_dir}", *QUIET_LOG, *extra]


@pytest.mark.parametrize("name", list(BACKBONES))
def test_a_timm_backbone_trains_resumes_evaluates_and_exports_to_timm(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    size, encoder = BACKBONES[name]
    straight, parted = tmp_path / "straight", tmp_path / "parted"
    train(load_recipe(QUICKSTART, _overrides(size, encoder, straight, "trainer.max_steps=2")))
    train(load_recipe(QUICKSTART, _overrides(size, encoder, parted, "trainer.max_steps=1")))
    train(load_recipe(QUICKSTART, _overrides(size, encoder, parted, "trainer.max_steps=2",
                                             "resume=auto")))
    # LeJEPA's terms, SIGReg and the Lévy 2D prior on the field, identical after the resume
    a = [e for e in read_metrics(straight) if "train/loss" in e]
    b = [e for e in read_metrics(parted) if "train/loss" in e]
    assert [e["step"] for e in a] == [e["step"] for e in b] == [1, 2]
    for ea, eb in zip(a, b):
        for key in ("train/loss", "train/sigreg", "train/inv", "train/within"):
            assert eb[key] == pytest.approx(ea[key], rel=1e-6, abs=1e-9), (ea["step"], key)
        assert ea["train/within"] > 0
    sa, sb = _encoder_state(straight), _encoder_state(parted)
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sb[key], sa[key], rtol=1e-6, atol=1e-7)

    assert eval_main([str(parted), "task=classification", "progress=false"]) == 0
    scores = json.loads((parted / "eval.json").read_text())
    assert 0.0 <= scores["classification/knn_top1"] <= 1.0 and scores["step"] == 2

    assert export_main([str(parted)]) == 0
    printed = capsys.readouterr().out
    folder = parted / "export" / "timm"
    assert f'timm.create_model("local-dir:{folder.resolve()}", pretrained=True)' in printed
    evaluated = load_trained(parted).encoder.eval()
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    by_timm = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    with torch.no_grad():
        want = evaluated.forward_tokens(images)
        feats = by_timm.forward_features(images)
        if feats.dim() == 3:  # a ViT's tokens, class token first
            feats = feats[:, by_timm.num_prefix_tokens:].unflatten(1, want.shape[1:3])
        else:
            feats = feats.permute(0, 2, 3, 1)
        exported = load_encoder(parted / "export").forward_tokens(images)
    diff = (feats - want).abs().max().item()
    print(f"{name}: exported timm model vs the run's evaluated encoder, max abs diff {diff:.3g}")
    assert diff < 1e-5
    assert torch.equal(exported, want)
