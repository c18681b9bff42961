"""``task=segmentation``: the linear segmentation probe on generated scenes with exact maps.

The protocol is the "linear" one of DINOv2 / DINOv3 (:mod:`levyjepa.eval.segmentation_probe`):
BatchNorm + a 1x1 linear head on the frozen patch-token field, logits bilinearly upsampled to
the label resolution, cross-entropy, AdamW (lr 1e-3, weight decay 1e-3, DINOv3's linear config),
a fixed number of iterations; mIoU over every class, background included. The scenes are those
of :func:`levyjepa.data.generated.scenes.render_scenes`: the run's own when it was trained on the
``scenes`` source (same parameters; probe-train scenes are the first training scenes, test scenes
the source's disjoint test range), otherwise default scenes at the encoder's input size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from levyjepa.data.generated.scene_images import TEST_START, scene_params
from levyjepa.data.generated.scenes import Scenes, render_scenes
from levyjepa.eval.dense_features import image_fields, patch_size_of, pixel_field
from levyjepa.eval.dense_metrics import chance_miou, confusion_matrix, segmentation_scores
from levyjepa.eval.segmentation_probe import fit_linear_segmentation, predict_segmentation


def segmentation_scenes(data_cfg: dict, *, size: int, n_train: int, n_test: int
                        ) -> tuple[Scenes, Scenes, int]:
    """Probe-train and test scenes for a run, and the number of label classes (``1 + C``).

    Args:
        data_cfg: The run's ``data`` section (its own scenes when ``name`` is ``scenes``).
        size: The encoder's input side (the scenes' size for other data sources).
        n_train: Probe-training scenes.
        n_test: Test scenes.
    """
    params = scene_params(data_cfg if data_cfg.get("name") == "scenes" else {"size": size})
    params["size"] = size
    train = render_scenes(n_train, **params)
    test = render_scenes(n_test, first=TEST_START, **params)
    return train, test, 1 + int(params["classes"])


def run_segmentation(
    encoders: dict[str, nn.Module],
    data_cfg: dict,
    *,
    size: int,
    n_train: int = 512,
    n_test: int = 256,
    iterations: int = 1000,
    features: str = "tokens",
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    seed: int = 0,
    pixels: bool = True,
) -> dict[str, Any]:
    """Fit and score the linear segmentation probe on every feature source.

    Args:
        encoders: ``source -> encoder``; e.g. ``{"trained": ..., "untrained": ...}``. The raw
            pixels source (``pixels``) is added, with the patch size of the first encoder.
        data_cfg: The run's ``data`` section.
        size: The encoder's input side.
        n_train: Probe-training scenes.
        n_test: Test scenes.
        iterations: AdamW steps of the probe (batch 16).
        features: ``tokens`` or ``tokens_proj``.
        batch_size: Images per encoder forward.
        device: Where the encoders and the probe run.
        seed: Seed of the probe's initialisation and batches.
        pixels: Add the raw-pixels source.

    Returns:
        ``{"scores": {source: {"miou", "pixel_acc", "iou", "present"}}, "chance_miou",
        "n_train", "n_test", "classes", "patch", "iterations", "features",
        "examples": {"images", "truth", "pred": {source: maps}}}`` (8 test scenes).
    """
    train, test, classes = segmentation_scenes(data_cfg, size=size, n_train=n_train,
                                               n_test=n_test)
    fields: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    patch = None
    for name, encoder in encoders.items():
        encoder = encoder.to(device)
        args = dict(which=features, batch_size=batch_size, device=device)
        fields[name] = (image_fields(encoder, train.images, **args),
                        image_fields(encoder, test.images, **args))
        patch = patch or patch_size_of(fields[name][0], size)
    if pixels:
        fields["pixels"] = (pixel_field(train.images, patch_size=patch),
                            pixel_field(test.images, patch_size=patch))
    scores, examples = {}, {}
    for name, (train_x, test_x) in fields.items():
        head = fit_linear_segmentation(train_x, train.semantic, classes=classes,
                                       iterations=iterations, seed=seed, device=device)
        pred = predict_segmentation(head, test_x, size=size)
        cm = confusion_matrix(pred, test.semantic, classes=classes)
        scores[name] = segmentation_scores(cm)
        examples[name] = pred[:8]
    freq = torch.bincount(test.semantic.flatten(), minlength=classes).double()
    return {
        "scores": scores,
        "chance_miou": chance_miou(freq / freq.sum()),
        "n_train": n_train, "n_test": n_test, "classes": classes, "patch": patch,
        "iterations": iterations, "features": features, "lr": 1e-3, "weight_decay": 1e-3,
        "batch": 16,
        "examples": {"images": test.images[:8], "truth": test.semantic[:8], "pred": examples},
    }
