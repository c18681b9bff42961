"""levyjepa.eval.segmentation_probe: oracle features, blind features, real scenes, determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from levyjepa.data.generated.scenes import render_scenes
from levyjepa.eval.dense_metrics import confusion_matrix, segmentation_scores
from levyjepa.eval.segmentation_probe import (
    evaluate_linear_segmentation,
    fit_linear_segmentation,
    predict_segmentation,
    raw_pixel_features,
)

P = 4  # patch side; 32 px maps on an 8 x 8 grid
FAST = {"iterations": 200, "lr": 1e-2}  # the default lr 1e-3 needs ~10x the steps


def best_blind_miou(freqs: torch.Tensor) -> float:
    """Largest mIoU of any predictor whose output is independent of the labels (large n).

    Labels i.i.d. with class fractions ``p`` (the same at every pixel); a blind predictor
    outputs class ``c`` with average probability ``q_c``. Then ``E[TP_c] = n p_c q_c`` and
    ``E[TP + FP + FN]_c = n (p_c + q_c - p_c q_c)``, so ``IoU_c -> g_c(q_c) = p_c q_c /
    (p_c + q_c - p_c q_c)``. Each ``g_c`` is increasing and concave with ``g_c'(0) = 1``, so the
    maximum of ``mean_c g_c`` on the simplex satisfies ``g_c'(q_c) = lambda`` for all ``c``:
    ``q_c ∝ p_c / (1 - p_c)``. Always predicting the majority class (``p_max / C``) and sampling
    the prior (``chance_miou``) are both below this value.
    """
    p = freqs.double() / freqs.sum()
    q = p / (1 - p)
    q = q / q.sum()
    return float((p * q / (p + q - p * q)).mean())


def patch_labels(n: int, prior: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial(prior, n * 64, replacement=True, generator=g).reshape(n, 8, 8)


def upsample(labels: torch.Tensor, block: int = P) -> torch.Tensor:
    return labels.repeat_interleave(block, 1).repeat_interleave(block, 2)


def miou(pred: torch.Tensor, maps: torch.Tensor, classes: int) -> float:
    return segmentation_scores(confusion_matrix(pred, maps, classes=classes))["miou"]


def test_one_hot_oracle_on_patch_aligned_maps():
    """One-hot of the per-patch label: mIoU >= 0.99 on maps of 4 x 4-patch blocks.

    Bilinear upsampling of the logits rounds region corners: the pixel nearest a patch corner
    gets only 0.625^2 = 0.39 of its weight from its own patch, so where two differently
    labelled patches touch it from both sides it is lost whatever the head. With one label per
    block of 4 x 4 patches that happens at a few pixels of the one inner junction (< 1% of the
    pixels), hence >= 0.99. On i.i.d. per-patch labels the probe must match the ceiling of the
    upsampled one-hot itself within 0.03 (measured 0.927 vs 0.943: cross-entropy, not a vote,
    sets the margins).
    """
    prior = torch.tensor([0.5, 0.3, 0.2])
    blocks = patch_labels(64, prior, seed=1)[:, :2, :2]  # 2 x 2 blocks of 4 x 4 patches
    grid = upsample(blocks, 4)
    feats, maps = F.one_hot(grid, 3).float(), upsample(grid)
    r = evaluate_linear_segmentation(feats[:32], maps[:32], feats[32:], maps[32:], classes=3,
                                     **FAST)
    assert r["miou"] >= 0.99 and r["pixel_acc"] >= 0.995

    grid = patch_labels(64, prior, seed=2)
    feats, maps = F.one_hot(grid, 3).float(), upsample(grid)
    head = fit_linear_segmentation(feats[:32], maps[:32], classes=3, **FAST)
    got = miou(predict_segmentation(head, feats[32:], size=32), maps[32:], 3)
    onehot = feats[32:].permute(0, 3, 1, 2)
    ceiling_pred = F.interpolate(onehot, size=(32, 32), mode="bilinear", align_corners=False)
    ceiling = miou(ceiling_pred.argmax(1), maps[32:], 3)
    assert 0.85 < ceiling < 0.97 and got >= ceiling - 0.03


def test_random_features_stay_at_blind_chance():
    """Gaussian features independent of the maps: mIoU within [bound - 0.06, bound + 0.03].

    ``bound`` is :func:`best_blind_miou` of the test maps' class fractions (0.224 for the prior
    0.6/0.3/0.1), the most any label-independent predictor reaches. +0.03 covers the sampling
    noise of 2048 test patches; the head typically settles on the majority class (0.6 / 3 =
    0.2), which lies within -0.06. Either way far below the oracle's 0.99.
    """
    prior = torch.tensor([0.6, 0.3, 0.1])
    grid = patch_labels(64, prior, seed=3)
    maps = upsample(grid)
    feats = torch.randn(64, 8, 8, 16, generator=torch.Generator().manual_seed(4))
    r = evaluate_linear_segmentation(feats[:32], maps[:32], feats[32:], maps[32:], classes=3,
                                     **FAST)
    bound = best_blind_miou(torch.bincount(maps[32:].flatten(), minlength=3))
    assert abs(bound - 0.224) < 0.01
    assert bound - 0.06 <= r["miou"] <= bound + 0.03


def recoloured_scenes(n: int, seed: int):
    """Scenes with each class's pixels set to one fixed colour (background left textured)."""
    s = render_scenes(n, size=32, classes=3, shapes=(1, 3), seed=seed)
    palette = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=torch.uint8)
    images = s.images.permute(0, 2, 3, 1).clone()
    for c in range(3):
        images[s.semantic == c + 1] = palette[c]
    return images.permute(0, 3, 1, 2), s.semantic


def test_raw_pixels_learn_on_real_scenes():
    """Raw pixels (patch 4) of scenes whose classes have distinct flat colours beat blind.

    The probe must clear :func:`best_blind_miou` of the test maps (~0.21, the background is
    ~80% of the pixels) and the random-feature probe on the same maps, by a wide margin.
    Note: on the scenes as rendered (a random colour per shape, not per class) a linear probe
    on raw pixels stays near blind, since the class lives in the shape's geometry.
    """
    images, maps = recoloured_scenes(96, seed=0)
    feats = raw_pixel_features(images, patch_size=P)
    assert feats.shape == (96, 8, 8, 3 * P * P)
    r = evaluate_linear_segmentation(feats[:64], maps[:64], feats[64:], maps[64:], classes=4,
                                     **FAST)
    noise = torch.randn(96, 8, 8, 48, generator=torch.Generator().manual_seed(5))
    blind = evaluate_linear_segmentation(noise[:64], maps[:64], noise[64:], maps[64:],
                                         classes=4, **FAST)
    bound = best_blind_miou(torch.bincount(maps[64:].flatten(), minlength=4))
    assert blind["miou"] <= bound + 0.03
    assert r["miou"] >= bound + 0.2 and r["miou"] >= blind["miou"] + 0.2


def test_raw_pixel_features_layout():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    feats = raw_pixel_features(images, patch_size=4)
    assert feats.shape == (2, 2, 2, 48)
    assert torch.equal(feats[1, 0, 1].reshape(3, 4, 4), images[1, :, 0:4, 4:8])
    u8 = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    assert torch.equal(raw_pixel_features(u8, patch_size=2), torch.ones(1, 2, 2, 12))


def test_deterministic_with_seed():
    grid = patch_labels(16, torch.tensor([0.5, 0.5]), seed=6)
    maps = upsample(grid)
    feats = torch.randn(16, 8, 8, 8, generator=torch.Generator().manual_seed(7)) + grid[..., None]
    kw = {"classes": 2, "iterations": 20, "batch_size": 4, "dropout": 0.1}
    state = torch.get_rng_state()
    a = fit_linear_segmentation(feats, maps, seed=3, **kw)
    b = fit_linear_segmentation(feats, maps, seed=3, **kw)
    c = fit_linear_segmentation(feats, maps, seed=4, **kw)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    assert not torch.equal(a.conv.weight, c.conv.weight)
    assert not a.training
    pred = predict_segmentation(a, feats, size=(32, 32))
    assert pred.dtype == torch.int64 and pred.shape == (16, 32, 32)
    assert torch.equal(pred, predict_segmentation(b, feats, size=32))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"train_maps": torch.zeros(3, 8, 8, dtype=torch.long)}, "train_maps"),
        ({"classes": 1}, "classes"),
        ({"train_feats": torch.zeros(4, 2, 2, 3, dtype=torch.long)}, "train_feats"),
        ({"train_maps": torch.full((4, 8, 8), 5)}, "train_maps"),
        ({"iterations": 0}, "iterations"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_input_names_the_argument(kwargs, name):
    args = {"train_feats": torch.zeros(4, 2, 2, 3), "train_maps": torch.zeros(4, 8, 8).long(),
            "classes": 2, **kwargs}
    with pytest.raises(ValueError, match=name):
        fit_linear_segmentation(args.pop("train_feats"), args.pop("train_maps"), **args)


def test_bad_input_other_entry_points():
    with pytest.raises(ValueError, match="test_feats"):
        evaluate_linear_segmentation(torch.zeros(2, 2, 2, 3), torch.zeros(2, 8, 8).long(),
                                     torch.zeros(3, 2, 2, 3), torch.zeros(2, 8, 8).long(),
                                     classes=2)
    with pytest.raises(ValueError, match="patch_size"):
        raw_pixel_features(torch.zeros(1, 3, 10, 10), patch_size=4)
