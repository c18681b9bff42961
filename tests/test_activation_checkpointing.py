"""Activation checkpointing (trainer.activation_checkpointing): the same gradients as the plain
forward, fewer tensors kept for the backward pass, and a one-line refusal where it is missing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.encoders.activation_checkpointing import enable_activation_checkpointing
from levyjepa.encoders.energy_transformer import EnergyTransformerEncoder
from levyjepa.encoders.timm_encoder import TimmEncoder
from levyjepa.encoders.video_vit import VideoViTEncoder
from levyjepa.encoders.vit import ViTEncoder
from levyjepa.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
HEADS = dict(emb_dim=8, pool_heads=2, proj_hidden=16, proj_dim=4)


def _vit() -> ViTEncoder:
    return ViTEncoder(arch="vit_tiny_patch16_224", img_size=16, patch_size=4, embed_dim=16,
                      depth=3, num_heads=2, drop_path=0.2, **HEADS)


def _video() -> VideoViTEncoder:
    return VideoViTEncoder(img_size=16, num_frames=4, tubelet_size=2, patch_size=4, embed_dim=16,
                           depth=3, num_heads=2, drop_path=0.2, **HEADS)


def _convnext() -> TimmEncoder:
    return TimmEncoder(arch="convnext_atto", img_size=32, **HEADS)


def _grads(build: Callable[[], nn.Module], inputs: torch.Tensor, *, checkpointed: bool,
           forward: str = "forward_tokens", keep: torch.Tensor | None = None
           ) -> tuple[dict[str, torch.Tensor], int]:
    """Gradients of a fixed function of the encoder's field, and the bytes of the tensors the
    forward kept for the backward pass."""
    torch.manual_seed(0)
    enc = build().train()
    if checkpointed:
        enable_activation_checkpointing(enc)
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    torch.manual_seed(1)  # the same stochastic-depth draws in both runs
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = getattr(enc, forward)(inputs) if keep is None else enc.forward_masked(inputs, keep)
    (out.square().mean() + out.sum() * 1e-3).backward()
    return {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}, saved[0]


@pytest.mark.parametrize("name,build,shape", [
    ("vit", _vit, (2, 3, 16, 16)),
    ("video_vit", _video, (2, 3, 4, 16, 16)),
    ("convnext", _convnext, (2, 3, 32, 32)),
])
def test_same_gradients_and_fewer_saved_activations(name, build, shape) -> None:
    inputs = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    plain, plain_bytes = _grads(build, inputs, checkpointed=False)
    ckpt, ckpt_bytes = _grads(build, inputs, checkpointed=True)
    assert plain.keys() == ckpt.keys() and len(plain) > 10
    for key in plain:
        torch.testing.assert_close(ckpt[key], plain[key], rtol=1e-5, atol=1e-7, msg=key)
    assert ckpt_bytes < 0.7 * plain_bytes, (ckpt_bytes, plain_bytes)


def test_the_masked_forward_is_checkpointed_too() -> None:
    images = torch.randn(2, 3, 16, 16)
    keep = torch.tensor([[0, 2, 5, 7, 9, 11, 15], [1, 3, 4, 6, 8, 12, 14]])
    plain, plain_bytes = _grads(_vit, images, checkpointed=False, keep=keep)
    ckpt, ckpt_bytes = _grads(_vit, images, checkpointed=True, keep=keep)
    for key in plain:
        torch.testing.assert_close(ckpt[key], plain[key], rtol=1e-5, atol=1e-7, msg=key)
    assert ckpt_bytes < 0.7 * plain_bytes


def test_without_gradients_nothing_is_recomputed() -> None:
    enc = _video().eval()
    enable_activation_checkpointing(enc)
    clips = torch.randn(1, 3, 4, 16, 16)
    with torch.no_grad():
        a = enc.forward_tokens(clips)
    enc.activation_checkpointing = False
    with torch.no_grad():
        b = enc.forward_tokens(clips)
    assert torch.equal(a, b)


def test_an_encoder_without_it_is_refused_in_one_line(tmp_path: Path) -> None:
    enc = EnergyTransformerEncoder(img_size=16, patch_size=4, embed_dim=8, num_heads=2,
                                   head_dim=4, memories=8, n_iters=1, pool="mean", emb_dim=8,
                                   proj_hidden=8, proj_dim=4)
    with pytest.raises(ValueError, match="has no activation checkpointing"):
        enable_activation_checkpointing(enc)
    from tiny_overrides import QUIET_LOG

    cfg = load_recipe(ROOT / "recipes" / "methods" / "ijepa_energy.yaml",
                      [f"out_dir={tmp_path / 'run'}", "data.train_size=16", "data.test_size=8",
                       "data.batch_size=4", "data.workers=0", *QUIET_LOG,
                       "trainer.activation_checkpointing=true", "trainer.max_steps=1"])
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("trainer.activation_checkpointing=true: encoder")
    assert not (tmp_path / "run").exists()


def test_a_run_with_it_logs_the_same_terms(tmp_path: Path) -> None:
    from test_train import read_metrics, tiny

    logs = []
    for flag in ("false", "true"):
        run = tmp_path / flag
        train(load_recipe(ROOT / "recipes" / "quickstart.yaml",
                          tiny(run, f"trainer.activation_checkpointing={flag}",
                               "trainer.max_steps=2")))
        logs.append([e for e in read_metrics(run) if "train/loss" in e])
    for plain, ckpt in zip(*logs):
        assert plain["step"] == ckpt["step"]
        for key in ("train/loss", "train/within", "train/grad_norm"):
            assert ckpt[key] == pytest.approx(plain[key], rel=1e-5), key
