"""The ViT's masked forward (I-JEPA's context encoder): kept tokens only, the dropped ones never
enter the transformer, so its outputs are the full forward's with attention blind to them."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from levyjepa.encoders.vit import ViTEncoder


def encoder(*, depth: int = 2) -> ViTEncoder:
    torch.manual_seed(0)
    return ViTEncoder(arch="vit_tiny_patch16_224", img_size=32, patch_size=4, embed_dim=32,
                      depth=depth, num_heads=2, drop_path=0.0, emb_dim=32, pool="mean",
                      proj_hidden=32, proj_dim=8, with_proj=False).eval()


def random_keep(images: int, patches: int, kept: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(patches, generator=gen)[:kept].sort().values
                        for _ in range(images)])


def blind_full_forward(enc: ViTEncoder, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The full forward where no query may attend to a dropped patch (an additive -inf mask on
    their keys), read at the kept patches: ``(B, K, D)``."""
    bb = enc.backbone
    prefix, patches = bb.num_prefix_tokens, enc.grid[0] * enc.grid[1]
    visible = torch.zeros(images.shape[0], prefix + patches, dtype=torch.bool)
    visible[:, :prefix] = True
    visible.scatter_(1, keep + prefix, True)
    bias = torch.zeros(visible.shape).masked_fill(~visible, float("-inf"))
    full = bb.forward_features(images, attn_mask=bias[:, None, None, :])  # (B, 1 + N, D)
    kept = full[:, prefix:].gather(1, keep.unsqueeze(-1).expand(-1, -1, full.shape[-1]))
    return kept


@pytest.mark.parametrize("kept", [1, 16, 40, 64])
def test_masked_forward_is_the_full_forward_blind_to_dropped_tokens(kept: int) -> None:
    enc = encoder()
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    keep = random_keep(3, 64, kept, seed=kept)
    with torch.no_grad():
        masked = enc.forward_masked(images, keep)
        want = blind_full_forward(enc, images, keep)
        plain = enc.forward_tokens(images).flatten(1, 2)
    assert masked.shape == (3, kept, 32)
    torch.testing.assert_close(masked, want, rtol=1e-5, atol=1e-5)
    if kept == 64:  # everything kept: the ordinary full forward
        torch.testing.assert_close(masked, plain, rtol=1e-5, atol=1e-5)
    else:  # the dropped tokens matter to the ordinary forward: it differs
        plain_kept = plain.gather(1, keep.unsqueeze(-1).expand(-1, -1, 32))
        assert (plain_kept - masked).abs().max() > 1e-3


def test_dropped_patches_get_no_gradient_and_cost_no_transformer_flops() -> None:
    """Dropped, not zeroed: their pixels receive exactly zero gradient, and at 25% kept the
    forward's FLOPs fall to about a quarter (attention to about 1/16)."""
    enc = encoder(depth=4)
    images = torch.randn(2, 3, 32, 32, requires_grad=True)
    keep = random_keep(2, 64, 16, seed=0)
    enc.forward_masked(images, keep).square().sum().backward()
    per_patch = images.grad.abs().unflatten(2, (8, 4)).unflatten(4, (8, 4)).sum((1, 3, 5))
    kept_map = torch.zeros(2, 64, dtype=torch.bool).scatter_(1, keep, True).view(2, 8, 8)
    assert (per_patch[~kept_map] == 0).all() and (per_patch[kept_map] > 0).all()

    def flops(fn) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()

    full = flops(lambda: enc.forward_tokens(images))
    masked = flops(lambda: enc.forward_masked(images, keep))
    assert 0.2 < masked / full < 0.32, masked / full  # 17 of 65 tokens in the blocks


def test_masked_forward_keeps_the_order_of_keep() -> None:
    enc = encoder()
    images = torch.randn(2, 3, 32, 32)
    keep = random_keep(2, 64, 10, seed=3)
    shuffled = keep.flip(1)
    with torch.no_grad():
        a, b = enc.forward_masked(images, keep), enc.forward_masked(images, shuffled)
    torch.testing.assert_close(b, a.flip(1), rtol=1e-5, atol=1e-5)
