"""The ``video_vit`` encoder: output contract (docs/method.md, shapes), validation, and the
``levy3d``
prior of ``recipes/video_levy3d.yaml`` reading its token field."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from levyjepa import ENCODERS
from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.encoders.video_vit import VideoViTEncoder
from levyjepa.methods.attached_priors import AttachedPriors
from levyjepa.methods.lejepa import LeJEPA
from levyjepa.priors.sheet_sampler import sample_levy_sheet

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(img_size=24, num_frames=8, patch_size=4, tubelet_size=2, embed_dim=32, depth=1,
            num_heads=2, pool_heads=2, emb_dim=24, proj_hidden=32, proj_dim=8)


def test_output_contract_and_gradients() -> None:
    torch.manual_seed(0)
    encoder = VideoViTEncoder(**TINY)
    n, v = 3, 2
    clips = torch.randn(n, v, 3, 8, 24, 24)
    out = encoder(clips)
    assert encoder.grid == (4, 6, 6)
    assert out.emb.shape == (n * v, 24)
    assert out.proj.shape == (v, n, 8)
    assert out.tokens.shape == (n * v, 4, 6, 6, 32)
    assert out.tokens_proj.shape == (n * v, 4, 6, 6, 8)
    # row n*V + v of emb and tokens is view v of sample n; proj[v, n] is its projection
    encoder.eval()
    with torch.no_grad():
        full, single = encoder(clips), encoder(clips[1:2, 1:2])
    torch.testing.assert_close(full.emb[1 * v + 1], single.emb[0])
    torch.testing.assert_close(full.tokens[1 * v + 1], single.tokens[0])
    torch.testing.assert_close(full.proj[1, 1], single.proj[0, 0])
    encoder.train()
    (out.proj.square().mean() + out.tokens_proj.square().mean()).backward()
    assert encoder.patch_embed.proj.weight.grad is not None
    assert encoder.pos_embed.grad.abs().sum() > 0


def test_without_token_projector_and_registry_build() -> None:
    encoder = ENCODERS.build({"name": "video_vit", **TINY}, with_tokens_proj=False)
    out = encoder(torch.randn(2, 1, 3, 8, 24, 24))
    assert out.tokens_proj is None and out.tokens.shape == (2, 4, 6, 6, 32)
    default = ENCODERS.build({"name": "video_vit"}, with_tokens_proj=True)
    assert default.grid == (8, 8, 8) and default.width == 384  # ViT-S, 16 x 128 px, 2x16x16


@pytest.mark.parametrize(("override", "match"), [
    ({"arch": "vit_huge"}, "arch must be one of vit_tiny, vit_small, vit_base"),
    ({"num_frames": 7}, "num_frames=7 must be a multiple of tubelet_size=2"),
    ({"img_size": 26}, "img_size=26 must be a multiple of patch_size=4"),
    ({"num_heads": 5}, "num_heads=5 must divide embed_dim=32"),
    ({"drop_path": 1.0}, r"drop_path must be in \[0, 1\)"),
])
def test_bad_parameters_are_refused(override: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ENCODERS.build({"name": "video_vit", **TINY, **override}, with_tokens_proj=True)


def test_wrong_input_shapes_are_refused() -> None:
    encoder = VideoViTEncoder(**TINY)
    with pytest.raises(ValueError, match=r"\(N, V, C, T, H, W\)"):
        encoder(torch.randn(2, 3, 24, 24))
    with pytest.raises(ValueError, match="expected clips"):
        encoder(torch.randn(1, 1, 3, 6, 24, 24))


def test_levy3d_scores_sheets_far_below_white_noise_through_video_vit() -> None:
    """The recipe's prior (levy3d, weight gamma 1, channel rotation on) on ``tokens_proj``-shaped
    fields of the encoder's own output: 3D Lévy sheets (axis-aligned cells, the recipe's
    sigma, lam, alpha, time_scale) score far below white noise with the sheets' variance.
    Per family, with rotation off, the axis family also separates the sheets from white noise
    whose cell increments have the prior's variance (the harder alternative)."""
    overrides = ["data.root=unused", "data.size=24", "data.frames_per_clip=8",
                 *(f"encoder.{k}={val}" for k, val in TINY.items()
                   if k not in ("img_size", "num_frames")),
                 "method.sigreg.slices=16"]
    cfg = load_recipe(ROOT / "recipes" / "video_levy3d.yaml", overrides)
    assert cfg.priors.within.name == "levy3d" and cfg.priors.within.weight == 1.0
    torch.manual_seed(0)
    encoder = ENCODERS.build(OmegaConf.to_container(cfg.encoder), with_tokens_proj=True)
    priors = AttachedPriors(OmegaConf.to_container(cfg.priors), outputs=LeJEPA.outputs,
                            method="lejepa")
    assert priors.attachments["within"].input == "tokens_proj"
    with torch.no_grad():
        out = encoder(torch.randn(16, 2, 3, 8, 24, 24))
    shape = out.tokens_proj.shape
    assert shape == (32, 4, 6, 6, 8)
    levy = cfg.priors.within
    gen = torch.Generator().manual_seed(1)
    sheets = sample_levy_sheet(shape[:-1], shape[-1], sigma=levy.sigma, lam=levy.lam,
                               alpha=levy.alpha, time_scale=levy.time_scale, generator=gen)
    white = torch.randn(shape, generator=gen) * sheets.std()

    def within(field: torch.Tensor) -> float:
        loss = torch.zeros(())  # the method's loss; the prior's term is added to it
        return sum(float(priors({"loss": loss}, {"tokens_proj": field}, step=s)["within"])
                   for s in range(3)) / 3

    on_sheets, on_white = within(sheets), within(white)
    assert on_white > 5 * on_sheets, (on_sheets, on_white)

    var_1 = levy.sigma**2 + levy.lam * 2.0 / levy.alpha**2  # Laplace jumps: E[tau] = 2/alpha^2
    white_increments = torch.randn(shape, generator=gen) * (levy.time_scale * var_1 / 8) ** 0.5
    axis = priors.priors["within"].statistics  # family 0: 2x2x2 cells
    priors.priors["within"].rotate = False
    null, alt = axis(sheets, step=0)[0], axis(white_increments, step=0)[0]
    assert alt.mean() > 5 * null.mean() and alt.min() > null.quantile(0.9), (null, alt)
