"""The attentive probe, test-time averaging and the video classification entry function."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from levyjepa.core.errors import ConfigError
from levyjepa.data.video.video_folder import scan_videos
from levyjepa.eval.benchmarks.attentive_probe import (
    AttentiveProbe,
    MeanTokenLinear,
    average_softmax,
    fit_probes,
    video_probabilities,
)
from levyjepa.eval.benchmarks.video_classification import (
    evaluate_video_classification,
    segment_starts,
    spatial_views,
)


def marker_tokens(n: int, *, classes: int, length: int, dim: int,
                  seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Label ``k``: the marker vector sits on token ``k``. Every token carries its own fixed
    position vector and noise; the noise is centred over each sample's tokens, so the mean token
    is ``mean(pos) + marker / length`` for *every* sample, whatever its class."""
    fixed = torch.Generator().manual_seed(123)  # the same positions and marker in every split
    pos, marker = torch.randn(length, dim, generator=fixed), 3 * torch.randn(dim, generator=fixed)
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    noise = 0.3 * torch.randn(n, length, dim, generator=g)
    tokens = pos + noise - noise.mean(dim=1, keepdim=True)
    tokens[torch.arange(n), labels] += marker
    return tokens, labels


def cached_batches(tokens: torch.Tensor, labels: torch.Tensor, batch: int):
    g = torch.Generator().manual_seed(0)

    def batches(epoch: int):
        order = torch.randperm(len(tokens), generator=g)
        for chunk in order.split(batch):
            yield tokens[chunk], labels[chunk]

    return batches


def test_attentive_probe_finds_the_marker_where_the_mean_token_cannot() -> None:
    classes, length, dim = 4, 8, 16
    train_x, train_y = marker_tokens(512, classes=classes, length=length, dim=dim, seed=0)
    val_x, val_y = marker_tokens(256, classes=classes, length=length, dim=dim, seed=1)
    means = torch.cat([train_x, val_x]).mean(dim=1)
    assert torch.allclose(means, means[0].expand_as(means), atol=1e-5)  # one mean for all
    torch.manual_seed(0)
    probes = {"attentive": AttentiveProbe(dim, classes, num_heads=2),
              "linear_mean": MeanTokenLinear(dim, classes)}
    losses = fit_probes(probes, cached_batches(train_x, train_y, 64), epochs=15,
                        steps_per_epoch=8, lr=1e-2, weight_decay=0.01, progress=False)
    with torch.no_grad():
        acc = {name: float((p(val_x).argmax(1) == val_y).float().mean())
               for name, p in probes.items()}
    assert acc["attentive"] > 0.9, acc
    # identical inputs give identical outputs: one class predicted for all, so exactly the
    # share of that class in the balanced val set, 64 / 256 = 1 / K = 0.25
    assert acc["linear_mean"] == pytest.approx(0.25, abs=1e-6), acc
    # the mean-token probe's best loss is the entropy of the uniform label, ln 4 = 1.386
    assert losses["linear_mean"] >= math.log(4) - 1e-3
    assert losses["attentive"] < 0.5


def test_average_softmax_golden() -> None:
    # clip 1: softmax(0, 0) = (0.5, 0.5); clip 2: softmax(ln 3, 0) = (3/4, 1/4)
    # mean: (0.625, 0.375)
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]])
    assert torch.allclose(average_softmax(logits), torch.tensor([[0.625, 0.375]]))


def test_video_prediction_is_the_mean_of_the_per_view_softmaxes() -> None:
    torch.manual_seed(0)
    probe = AttentiveProbe(8, 5, num_heads=2, num_queries=3, mlp_ratio=2.0).eval()
    videos, clips = 3, 2 * 3  # 2 segments x 3 views
    tokens = torch.randn(videos * clips, 7, 8)
    got = video_probabilities(probe, tokens, clips=clips, batch_size=4)
    with torch.no_grad():
        for i in range(videos):
            per_view = [probe(tokens[i * clips + c][None]).softmax(-1)[0] for c in range(clips)]
            assert torch.allclose(got[i], torch.stack(per_view).mean(0), atol=1e-6)
    assert torch.allclose(got.sum(1), torch.ones(videos))


def test_segment_starts_golden() -> None:
    # 16 frames every 4: span 15 * 4 + 1 = 61; 100 frames: starts 0 .. 100 - 61 = 39
    assert segment_starts(100, segments=3, frames_per_clip=16, frame_step=4) == [0, 19, 39]
    assert segment_starts(100, segments=1, frames_per_clip=16, frame_step=4) == [19]  # 39 / 2
    assert segment_starts(40, segments=2, frames_per_clip=16, frame_step=4) == [0, 0]  # short


def test_three_views_along_the_long_side() -> None:
    # 16 x 32 frames whose value is the column: short side 16 = resolution (no resize), crops
    # every (32 - 16) // 2 = 8 columns: left 0..15, centre 8..23, right 16..31
    frames = np.broadcast_to(np.arange(32, dtype=np.uint8)[None, None, :, None],
                             (2, 16, 32, 3)).copy()
    views = spatial_views(frames, resolution=16, views=3)
    assert views.shape == (3, 2, 3, 16, 16)
    for v, first in enumerate((0, 8, 16)):
        assert torch.allclose(views[v, 0, 0, 0] * 255, torch.arange(first, first + 16.0))
    tall = spatial_views(frames.transpose(0, 2, 1, 3).copy(), resolution=16, views=3)
    assert torch.allclose(tall[2, 0, 0, :, 0] * 255, torch.arange(16, 32.0))
    one = spatial_views(frames, resolution=16, views=1)  # short side 16 * 256 / 224 -> 18
    assert one.shape == (1, 2, 3, 16, 16)


def patch_encode(frames: torch.Tensor) -> torch.Tensor:
    """A stand-in encoder: each 4 x 4 patch of each frame, pixels flattened, one token."""
    n, t, c, h, w = frames.shape
    patches = frames.reshape(n, t, c, h // 4, 4, w // 4, 4).permute(0, 1, 3, 5, 2, 4, 6)
    return patches.reshape(n, t * (h // 4) * (w // 4), c * 16)


@pytest.mark.parametrize("max_cache_gb", [4.0, 0.0], ids=["cached", "recomputed"])
def test_entry_function_on_video_files(video_tree: Path, tmp_path: Path,
                                       max_cache_gb: float) -> None:
    train_paths, train_labels, classes = scan_videos(video_tree / "train")
    val_paths, val_labels, _ = scan_videos(video_tree / "val", classes)
    calls: list[tuple[int, ...]] = []

    def encode(frames: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(frames.shape))
        assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
        return patch_encode(frames)

    out = tmp_path / "out"
    metrics = evaluate_video_classification(
        encode, train_items=list(zip(train_paths, train_labels)),
        val_items=list(zip(val_paths, val_labels)), num_classes=2, out_dir=out,
        frames_per_clip=4, frame_step=2, resolution=16, segments=2, views=3, epochs=2,
        lr=1e-3, batch_size=4, max_cache_gb=max_cache_gb, progress=False)
    assert set(metrics) == {"video_cls/top1", "video_cls/linear_mean_top1", "video_cls/num_val",
                            "video_cls/skipped_files", "details"}
    assert metrics["video_cls/num_val"] == 2 and metrics["video_cls/skipped_files"] == 0
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("video_cls/top1", "video_cls/linear_mean_top1"))
    details = metrics["details"]
    assert details["cached"] is (max_cache_gb > 0)
    assert details["tokens"] == [4 * 4 * 4, 48]  # T x (16 / 4)^2 tokens of 3 x 4 x 4 pixels
    assert details["clips_per_val_video"] == 6 and details["clips_per_train_video"] == 2
    assert all(shape[1:] == (4, 3, 16, 16) for shape in calls)
    # each val video: 2 segments x 3 views = 6 clips, in batches of at most 4
    assert sum(s[0] for s in calls[-2:]) == 6
    saved = json.loads((out / "video_classification.json").read_text())
    assert saved["video_cls/top1"] == metrics["video_cls/top1"]
    rows = list(csv.DictReader((out / "video_classification_predictions.csv").open()))
    assert [int(r["label"]) for r in rows] == val_labels


def test_entry_function_refuses_bad_items(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^val_items: 'b\.mp4' has label 2; labels are "
                                          r"integers 0 \.\. num_classes - 1 = 1$"):
        evaluate_video_classification(patch_encode, train_items=[("a.mp4", 0)],
                                      val_items=[("b.mp4", 2)], num_classes=2, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="^segments must be a positive integer, got 0$"):
        evaluate_video_classification(patch_encode, train_items=[("a.mp4", 0)],
                                      val_items=[("b.mp4", 1)], num_classes=2, out_dir=tmp_path,
                                      segments=0)
