"""Semantic segmentation linear probe on PASCAL VOC 2012 or ADE20K: the entry function.

:func:`evaluate_semantic_segmentation` reads the benchmark in its own layout
(:mod:`levyjepa.eval.benchmarks.semseg_data`), trains the DINOv3 linear head on the frozen
tokens of a feature function and scores it by sliding window
(:mod:`levyjepa.eval.benchmarks.semseg_probe`). mIoU is computed as in PASCAL VOC and
mmsegmentation: one confusion matrix over the whole validation set, ``IoU_c = TP / (TP + FP +
FN)``, averaged over the classes whose union is non-zero (present in the ground truth or the
prediction), see :func:`levyjepa.eval.dense_metrics.segmentation_scores`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from levyjepa.core.atomic import atomic_write_bytes, atomic_write_json
from levyjepa.core.errors import ConfigError
from levyjepa.eval.benchmarks.semseg_data import DATASETS, IGNORE_INDEX, open_segmentation_set
from levyjepa.eval.benchmarks.semseg_probe import evaluate_head, fit_head
from levyjepa.eval.dense_metrics import segmentation_scores

PICTURES = 4
"""Validation images drawn in the picture."""


def evaluate_semantic_segmentation(
    features: Callable[[torch.Tensor], torch.Tensor],
    *,
    dataset: str,
    root: str | Path,
    out_dir: str | Path,
    patch: int | None = None,
    iterations: int = 40_000,
    batch_size: int = 16,
    crop: int = 512,
    stride: int = 341,
    base_size: int | None = 512,
    lr: float = 1e-3,
    weight_decay: float = 1e-3,
    warmup: int = 1500,
    dropout: float = 0.1,
    device: str | torch.device = "cpu",
    seed: int = 0,
    workers: int = 0,
    max_train: int | None = None,
    max_val: int | None = None,
    progress: bool = True,
) -> dict:
    """Train the linear segmentation probe on the train split and score the validation split.

    Args:
        features: Frames ``(n, 3, H, W)`` float32 in ``[0, 1]`` (on ``device``) -> patch tokens
            ``(n, H / patch, W / patch, C)``: the last layer's tokens, or the last four layers'
            concatenated (then ``C`` is four times the width). Called without gradients.
        dataset: ``voc2012`` or ``ade20k``.
        root: VOC: the ``VOC2012`` folder; ADE20K: the folder holding ``ADEChallengeData2016``
            (or that folder).
        out_dir: Where ``semantic_segmentation_<dataset>.json`` and
            ``pictures/semantic_segmentation_<dataset>.png`` are written.
        patch: The feature function's patch size (default: its ``patch`` attribute).
        iterations: Optimiser steps (40000 in DINOv3).
        batch_size: Training crops per step.
        crop: Side of the training crops and of the evaluation windows (a multiple of ``patch``).
        stride: Step of the evaluation windows.
        base_size: Short side of the images before the random scale factor ``[0.5, 2]`` in
            training and for evaluation (``None``: the images' own size).
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup: Linear warm-up steps.
        dropout: Channel dropout before the 1x1 convolution during training.
        device: Where the features and the head are computed.
        seed: Seed of the head, the sample order, the augmentations and the dropout.
        workers: DataLoader processes that read and augment the training images.
        max_train: Use only the first ``max_train`` training images (``None``: all).
        max_val: Score only the first ``max_val`` validation images (``None``: all).
        progress: Show progress bars.

    Returns:
        ``{"semseg/miou": float, "semseg/pixel_acc": float, "semseg/per_class_iou": {class name:
        IoU, or None when the class is in neither the ground truth nor the prediction}}``.

    Raises:
        ConfigError: A missing or malformed benchmark tree, or an invalid argument (one line).
    """
    if dataset not in DATASETS:
        raise ConfigError(f"dataset={dataset!r}: expected one of {', '.join(DATASETS)}")
    patch = _patch(features, patch)
    for name, value in (("iterations", iterations), ("batch_size", batch_size), ("crop", crop),
                        ("stride", stride)):
        _positive_int(name, value)
    for name, value in (("warmup", warmup), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name}={value!r}: expected a non-negative integer")
    if crop % patch:
        raise ConfigError(f"crop={crop}: expected a multiple of the patch size {patch}")
    if base_size is not None:
        _positive_int("base_size", base_size)
    if not (lr > 0 and weight_decay >= 0 and 0 <= dropout < 1):
        raise ConfigError(f"lr={lr}, weight_decay={weight_decay}, dropout={dropout}: expected "
                          "lr > 0, weight_decay >= 0, 0 <= dropout < 1")
    train = open_segmentation_set(dataset, root, "train", limit=max_train)
    val = open_segmentation_set(dataset, root, "val", limit=max_val)
    head = fit_head(features, train, patch=patch, iterations=iterations, batch_size=batch_size,
                    crop=crop, base_size=base_size, lr=lr, weight_decay=weight_decay,
                    warmup=warmup, dropout=dropout, device=device, seed=seed, workers=workers,
                    progress=progress)
    cm, kept = evaluate_head(head, features, val, patch=patch, crop=crop, stride=stride,
                             base_size=base_size, device=device, keep=PICTURES,
                             progress=progress)
    scores = segmentation_scores(cm)
    per_class = {name: (None if math.isnan(v) else v) for name, v in zip(val.classes,
                                                                          scores["iou"])}
    result = {"semseg/miou": scores["miou"], "semseg/pixel_acc": scores["pixel_acc"],
              "semseg/per_class_iou": per_class}
    out_dir = Path(out_dir)
    settings = {"dataset": dataset, "patch": patch, "iterations": iterations,
                "batch_size": batch_size, "crop": crop, "stride": stride, "base_size": base_size,
                "lr": lr, "weight_decay": weight_decay, "warmup": warmup, "dropout": dropout,
                "seed": seed, "train_images": len(train), "val_images": len(val)}
    atomic_write_json(out_dir / f"semantic_segmentation_{dataset}.json",
                      {"settings": settings, "results": result})
    draw_predictions(kept, out_dir / "pictures" / f"semantic_segmentation_{dataset}.png")
    return result


def palette() -> np.ndarray:
    """``(256, 3)`` uint8 colours: the PASCAL VOC bit-interleaved palette, 255 drawn white."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for k in range(256):
        c, r, g, b = k, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours[k] = (r, g, b)
    colours[IGNORE_INDEX] = 255
    return colours


def draw_predictions(kept: list[tuple[torch.Tensor, ...]], path: Path) -> None:
    """Write one row per image: the image, its ground truth, the prediction (PNG, atomically).

    Args:
        kept: ``(image (3, H, W) in [0, 1], label (H, W), prediction (H, W))`` triples.
        path: The PNG to write; nothing is written when ``kept`` is empty.
    """
    if not kept:
        return
    colours = palette()
    side = 160
    rows = []
    for image, label, pred in kept:
        h, w = label.shape
        k = side / max(h, w)
        size = (max(1, round(w * k)), max(1, round(h * k)))
        rgb = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        tiles = [Image.fromarray(rgb).resize(size, Image.BILINEAR)]
        for m in (label, pred):
            tiles.append(Image.fromarray(colours[m.numpy().astype(np.uint8)]).resize(
                size, Image.NEAREST))
        rows.append(tiles)
    width = max(sum(t.width for t in r) + 4 * (len(r) - 1) for r in rows)
    height = sum(r[0].height for r in rows) + 4 * (len(rows) - 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for r in rows:
        x = 0
        for t in r:
            canvas.paste(t, (x, y))
            x += t.width + 4
        y += r[0].height + 4
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _patch(features: object, patch: int | None) -> int:
    value = getattr(features, "patch", None) if patch is None else patch
    if value is None:
        raise ConfigError("patch: the feature function has no 'patch' attribute; pass patch=")
    _positive_int("patch", value)
    return value


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r}: expected a positive integer")
