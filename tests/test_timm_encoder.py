"""The ``timm`` encoder: the field of ViTs and ConvNets (the sizes docs/encoders.md states), the
CIFAR stem, prefix tokens, stages, the masked forward, and one-line refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import timm
import torch

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import ENCODERS
from levyjepa.encoders.timm_encoder import TimmEncoder

ROOT = Path(__file__).resolve().parents[1]
HEADS = {"proj_hidden": 16, "pool_heads": 2}


def _field_table() -> list[tuple[str, str, dict[int, tuple[int, int, int]]]]:
    """Rows ``(arch, stem, {side: (h, w, D)})`` of the field-size table in docs/encoders.md."""
    text = (ROOT / "docs" / "encoders.md").read_text()
    section = text.split("### Field sizes", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    sides = [int(c.removesuffix(" px")) for c in header[2:]]
    rows = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if set(cells[0]) <= {"-"}:
            continue
        shapes = {s: tuple(int(v) for v in c.split("x")) for s, c in zip(sides, cells[2:])}
        rows.append((cells[0], cells[1], shapes))
    return rows


FIELD_ROWS = _field_table()


def test_the_docs_table_lists_resnets_convnexts_and_a_vit_at_three_sizes() -> None:
    archs = {arch for arch, _, _ in FIELD_ROWS}
    assert {"resnet18", "convnext_atto", "vit_tiny_patch16_224"} <= archs
    assert all(set(shapes) == {32, 64, 128} for _, _, shapes in FIELD_ROWS)


@pytest.mark.parametrize("arch,stem,shapes", FIELD_ROWS,
                         ids=[f"{a}-{s}" for a, s, _ in FIELD_ROWS])
def test_the_field_has_the_shape_the_docs_state(arch: str, stem: str,
                                                shapes: dict[int, tuple[int, int, int]]) -> None:
    encoder = TimmEncoder(arch=arch, img_size=32, cifar_stem=stem == "CIFAR", **HEADS,
                          with_proj=False, with_tokens_proj=False).eval()
    for side, (h, w, d) in shapes.items():
        with torch.no_grad():
            field = encoder.forward_tokens(torch.randn(1, 3, side, side))
        assert tuple(field.shape) == (1, h, w, d), (side, tuple(field.shape))
        assert encoder.grid_of((side, side)) == (h, w)
    assert encoder.grid == shapes[32][:2] and encoder.width == shapes[32][2]


def test_the_cifar_stem_multiplies_the_side_as_the_docs_say() -> None:
    by = {(arch, stem): shapes for arch, stem, shapes in FIELD_ROWS}
    factors = {"resnet18": 4, "convnext_atto": 4, "efficientnet_b0": 2, "regnetx_002": 2}
    for arch, factor in factors.items():
        for side in (32, 64, 128):
            assert by[arch, "CIFAR"][side][0] == factor * by[arch, "ImageNet"][side][0]
    text = (ROOT / "docs" / "encoders.md").read_text()
    assert "by 4 for ResNets and ConvNeXts" in text and "by 2 for EfficientNets" in text


def test_a_resnet_with_the_cifar_stem_has_a_3x3_stride_1_stem_and_no_max_pool() -> None:
    encoder = TimmEncoder(arch="resnet18", img_size=32, cifar_stem=True, **HEADS)
    conv = encoder.backbone.conv1
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
    assert isinstance(encoder.backbone.maxpool, torch.nn.Identity)
    assert not encoder.timm_exportable


def test_vit_fields_drop_every_prefix_token_and_follow_the_input_size() -> None:
    """Class, distillation and register tokens are not cells of the field."""
    for arch, extra, prefix in (("vit_tiny_patch16_224", {}, 1),
                                ("deit_tiny_distilled_patch16_224", {}, 2),
                                ("vit_tiny_patch16_224", {"reg_tokens": 4}, 5)):
        encoder = TimmEncoder(arch=arch, img_size=16, **HEADS,
                              model_args={"patch_size": 4, "depth": 1, **extra}).eval()
        assert encoder.backbone.num_prefix_tokens == prefix
        images = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            feats = encoder.backbone.forward_features(images)
            field = encoder.forward_tokens(images)
            larger = encoder.forward_tokens(torch.randn(2, 3, 32, 24))
        assert field.shape == (2, 4, 4, 192)
        torch.testing.assert_close(field.flatten(1, 2), feats[:, prefix:], rtol=0, atol=0)
        assert larger.shape == (2, 8, 6, 192)  # position embeddings interpolated


def test_a_stage_takes_that_feature_map_and_removes_the_layers_after_it() -> None:
    encoder = TimmEncoder(arch="resnet18", img_size=64, stage=2, **HEADS).eval()
    reference = timm.create_model("resnet18", num_classes=0).eval()
    reference.load_state_dict(encoder.backbone.state_dict(), strict=False)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        (want,) = reference.forward_intermediates(images, indices=[2], intermediates_only=True)
        field = encoder.forward_tokens(images)
    assert field.shape == (2, 8, 8, 128)  # layer2: stride 8, 128 channels
    torch.testing.assert_close(field, want.permute(0, 2, 3, 1))
    assert not any(k.startswith("layer4") for k in encoder.backbone.state_dict())
    assert TimmEncoder(arch="resnet18", img_size=64, stage=-1, **HEADS).grid == (2, 2)


def test_pooling_mean_is_the_fields_mean_and_attention_has_its_own_width() -> None:
    images = torch.randn(3, 2, 3, 32, 32)
    mean = TimmEncoder(arch="resnet18", img_size=32, cifar_stem=True, pool="mean",
                       **HEADS).eval()
    out = mean(images)
    torch.testing.assert_close(out.emb, out.tokens.mean((1, 2)))
    assert mean.emb_dim == 512 and out.proj.shape == (2, 3, 16)
    attention = TimmEncoder(arch="resnet18", img_size=32, cifar_stem=True, emb_dim=24, **HEADS)
    assert attention(images).emb.shape == (6, 24) and attention.emb_dim == 24
    assert out.tokens_proj.shape == (6, 4, 4, 16)


def test_a_vit_has_a_masked_forward_a_convnet_none() -> None:
    vit = TimmEncoder(arch="vit_tiny_patch16_224", img_size=16, **HEADS,
                      model_args={"patch_size": 4, "depth": 1}).eval()
    images = torch.randn(2, 3, 16, 16)
    keep = torch.arange(16).expand(2, 16)  # every patch kept: the full forward
    with torch.no_grad():
        torch.testing.assert_close(vit.forward_masked(images, keep),
                                   vit.forward_tokens(images).flatten(1, 2))
    assert vit.has_masked_forward
    resnet = TimmEncoder(arch="resnet18", img_size=32, **HEADS)
    assert not resnet.has_masked_forward
    with pytest.raises(ValueError, match="no masked forward"):
        resnet.forward_masked(images, keep)


@pytest.mark.parametrize("section,message", [
    ({"arch": "resnet81"},
     r"^encoder: encoder 'timm': unknown timm model 'resnet81'; closest: resnet18"),
    ({"arch": "vit_tiny_patch16_224", "cifar_stem": True},
     r"^encoder: encoder 'timm': cifar_stem is for ConvNets"),
    ({"arch": "resnet18", "stage": 7}, r"^encoder: encoder 'timm': stage=7: resnet18 has 5 "),
    ({"arch": "resnet18", "model_args": {"pretrained": True}},
     r"^encoder: encoder 'timm': model_args.pretrained is not settable"),
    ({"arch": "resnet18", "model_args": {"no_such_arg": 1}},
     r"^encoder: encoder 'timm': timm.create_model\('resnet18'\) refused its arguments"),
    ({"arch": "eva02_tiny_patch14_224", "img_size": 32},
     r"^encoder: encoder 'timm': eva02_tiny_patch14_224 cannot encode a 32 px image"),
    ({"arch": "resnet18", "pool": "mean", "emb_dim": 64},
     r"^encoder: encoder 'timm': emb_dim=64 must be the field's width 512"),
])
def test_bad_settings_are_one_line_naming_the_value(section: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        ENCODERS.build({"name": "timm", "img_size": 32, **HEADS, **section}, where="encoder",
                       with_tokens_proj=True)
    assert "\n" not in str(err.value)
    assert re.search(message, str(err.value)), str(err.value)
