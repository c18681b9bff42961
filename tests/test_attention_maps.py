"""Attention maps (levyjepa.diagnostics.attention_maps): each map, recomputed from the weights,
reproduces the module's own output when the values are weighted by it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from levyjepa.diagnostics.attention_maps import (
    attention_maps,
    last_block_attention,
    plot_attention,
    pool_attention,
)
from levyjepa.encoders.timm_encoder import TimmEncoder
from levyjepa.encoders.vit import ViTEncoder

TINY = dict(arch="vit_tiny_patch16_224", img_size=16, patch_size=4, embed_dim=16, depth=2,
            num_heads=2, emb_dim=8, pool_heads=2, proj_hidden=16, proj_dim=4, drop_path=0.0)


def _vit(**kw) -> ViTEncoder:
    torch.manual_seed(0)
    return ViTEncoder(**{**TINY, **kw}).eval()


def test_pool_attention_weights_give_the_pooled_embedding() -> None:
    """sum_j a_hj v_hj over the prefix and the patches, projected by the pool's output layer,
    is what the attention pool returns; the patch weights are the map."""
    enc = _vit()
    images = torch.randn(3, 3, 16, 16)
    tokens = enc.forward_tokens(images)
    maps = pool_attention(enc, tokens)
    assert maps.shape == (3, 2, 4, 4)
    pool = enc.head.pool
    x = tokens.flatten(1, 2)
    x = torch.cat([x.mean(1, keepdim=True), x], 1) + pool.pos_embed  # same grid: no resampling
    q, k, v = pool.qkv(x).chunk(3, -1)
    heads = lambda t: t.unflatten(-1, (2, -1)).transpose(1, 2)  # noqa: E731
    a = F.softmax(heads(q[:, :1]) @ heads(k).transpose(-2, -1) / (8 ** 0.5), -1)  # head dim 8
    torch.testing.assert_close(a[:, :, 0, 1:].unflatten(-1, (4, 4)), maps)
    pooled = pool.proj((a @ heads(v)).transpose(1, 2).flatten(2))[:, 0]
    torch.testing.assert_close(pooled, pool(tokens.permute(0, 3, 1, 2)), rtol=1e-5, atol=1e-6)
    assert torch.all(maps.sum((-2, -1)) < 1) and torch.all(maps >= 0)


def test_last_block_attention_reproduces_the_block_output() -> None:
    """The recomputed attention of the last block, applied to its values and projected, equals
    the attention module's output; the map is the class token's row over the patches."""
    enc = _vit()
    images = torch.randn(2, 3, 16, 16)
    attn = enc.backbone.blocks[-1].attn
    seen = {}
    h1 = attn.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0]))
    h2 = attn.register_forward_hook(lambda m, a, out: seen.__setitem__("out", out))
    maps = last_block_attention(enc, images)
    h1.remove(), h2.remove()
    x = seen["x"]
    n = x.shape[1]  # 1 class token + 16 patches
    q, k, v = attn.qkv(x).unflatten(-1, (3, 2, -1)).permute(2, 0, 3, 1, 4)
    full = F.softmax(q @ k.transpose(-2, -1) / (8 ** 0.5), -1)
    out = attn.proj(attn.norm((full @ v).transpose(1, 2).reshape(2, n, -1)))
    torch.testing.assert_close(out, seen["out"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(maps, full[:, :, 0, 1:].unflatten(-1, (4, 4)))
    # a different image gives a different map (the map depends on the input)
    other = last_block_attention(enc, torch.randn(2, 3, 16, 16))
    assert not torch.allclose(maps, other)


def test_without_a_class_token_the_map_is_the_mean_over_queries() -> None:
    enc = _vit(arch="vit_medium_patch16_gap_256")  # global average pooling: no class token
    assert enc.backbone.num_prefix_tokens == 0
    images = torch.randn(2, 3, 16, 16)
    maps = last_block_attention(enc, images)
    assert maps.shape == (2, 2, 4, 4)
    torch.testing.assert_close(maps.sum((-2, -1)), torch.ones(2, 2))  # every query sums to 1


def test_which_maps_each_encoder_has() -> None:
    """A ViT with the attention pool has both; with mean pooling only the block's; a ConvNet
    with the attention pool only the pool's; a clip none."""
    images = torch.randn(2, 3, 16, 16)
    assert set(attention_maps(_vit(), images)) == {"pooling head", "last block"}
    assert set(attention_maps(_vit(pool="mean", emb_dim=16), images)) == {"last block"}
    conv = TimmEncoder(arch="resnet18", img_size=16, model_args={"layers": [1, 1, 1, 1],
                       "channels": [8, 8, 16, 16], "stem_width": 8}, cifar_stem=True,
                       stage=-2, emb_dim=8, pool_heads=2, proj_hidden=16, proj_dim=4)
    assert set(attention_maps(conv.eval(), images)) == {"pooling head"}
    assert attention_maps(_vit(), torch.randn(2, 3, 2, 16, 16)) == {}


def test_the_picture_has_one_column_per_map() -> None:
    enc = _vit()
    images = torch.randn(3, 3, 16, 16)
    fig = plot_attention(images, attention_maps(enc, images), rows=2)
    assert len(fig.axes) >= 2 * 3
