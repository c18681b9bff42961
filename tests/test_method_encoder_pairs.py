"""Every image method trains two steps with every image encoder it can use, and a pair that
cannot work is refused in one line before anything is written (docs/encoders.md, "Methods and
encoders")."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_train import TINY_DATA, TINY_SYNTHETIC, read_metrics
from tiny_overrides import QUIET_LOG

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.training.loop import train

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
HEADS = "pool_heads: 2, emb_dim: 16, proj_hidden: 32, tokens_proj_hidden: 16"
# tiny encoders at 16 px, each with a 4x4 field (the Lévy 2D prior needs 3x3 at least)
ENCODERS = {
    "vit": "{name: vit, arch: vit_tiny_patch16_224, img_size: 16, patch_size: 4, embed_dim: 32, "
           f"depth: 1, num_heads: 2, {HEADS}}}",
    "timm_vit": "{name: timm, arch: vit_tiny_patch16_224, img_size: 16, model_args: "
                f"{{patch_size: 4, embed_dim: 32, depth: 1, num_heads: 2}}, {HEADS}}}",
    "timm_resnet": "{name: timm, arch: resnet18, img_size: 16, cifar_stem: true, stage: -2, "
                   "model_args: {layers: [1, 1, 1, 1], channels: [8, 16, 16, 16], stem_width: 8}, "
                   f"{HEADS}}}",
    "timm_convnext": "{name: timm, arch: convnext_atto, img_size: 16, cifar_stem: true, stage: -2, "
                     f"model_args: {{depths: [1, 1, 1, 1], dims: [8, 16, 16, 16]}}, {HEADS}}}",
}
# the method's section and what it needs of the views and the encoder beside it
METHODS = {
    "lejepa_multicrop": ["method.sigreg.slices=16"],  # the quickstart's 2 global + 6 local views
    "lejepa": ["method.sigreg.slices=16", "views.local_views=0"],
    "vicreg": ["method={name: vicreg}", "views.local_views=0"],
    "ijepa": ["method={name: ijepa, min_keep: 2, predictor_width: 16, predictor_depth: 1, "
              "predictor_heads: 2}", "views.local_views=0", "encoder.pool=mean",
              "encoder.emb_dim=32"],
}
MASKED = ("ijepa",)  # methods that need a masked forward: ViTs only
CONVNETS = ("timm_resnet", "timm_convnext")
PAIRS = [(m, e) for m in METHODS for e in ENCODERS if not (m in MASKED and e in CONVNETS)]


def overrides(method: str, encoder: str, out_dir: Path, *extra: str) -> list[str]:
    return [*TINY_DATA, *TINY_SYNTHETIC, f"encoder={ENCODERS[encoder]}", *METHODS[method],
            f"out_dir={out_dir}", *QUIET_LOG, *extra]


@pytest.mark.parametrize("method,encoder", PAIRS, ids=[f"{m}-{e}" for m, e in PAIRS])
def test_every_image_method_trains_with_every_encoder_it_can_use(method: str, encoder: str,
                                                                  tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = train(load_recipe(QUICKSTART, overrides(method, encoder, run,
                                                      "trainer.max_steps=2")))
    assert summary["steps"] == 2
    events = [e for e in read_metrics(run) if "train/loss" in e]
    assert [e["step"] for e in events] == [1, 2]
    # the quickstart's Lévy 2D prior reads every encoder's field
    assert all(abs(e["train/within"]) < float("inf") and e["train/within"] != 0 for e in events)


@pytest.mark.parametrize("encoder", CONVNETS)
def test_a_masked_method_with_a_convnet_is_refused_before_anything_is_written(
        encoder: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = load_recipe(QUICKSTART, overrides("ijepa", encoder, run, "trainer.max_steps=2",
                                            "encoder.emb_dim=null"))  # the field's width
    with pytest.raises(ConfigError) as err:
        train(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("method 'ijepa' needs an encoder with a masked forward")
    assert "(resnet18)" in message or "(convnext_atto)" in message
    assert message.endswith("methods without that need: hjepa_views, lejepa, saccade, vicreg")
    assert not run.exists()
