"""The DINOv3 linear segmentation probe on a frozen feature function: augmented training, sliding-
window evaluation and the whole-set confusion matrix.

Protocol (Oquab et al., "DINOv2", arXiv 2304.07193, 2023, linear evaluation; Siméoni et al.,
"DINOv3", arXiv 2508.10104, 2025, public code ``facebookresearch/dinov3``,
``dinov3/eval/segmentation``): a BatchNorm, channel dropout 0.1 and a 1x1 convolution on the
frozen last-layer patch tokens (:class:`levyjepa.eval.segmentation_probe.LinearSegmentationHead`),
logits upsampled bilinearly to the crop, cross-entropy ignoring label 255; AdamW (lr 1e-3, weight
decay 1e-3), batch 16, a linear warm-up then cosine annealing (see :func:`learning_rate`);
training crops: the short side rescaled to ``base_size`` times a factor drawn in ``[0.5, 2]``, a
random ``crop x crop`` window (padded with label 255 where the image is smaller), a horizontal
flip with probability 1/2; evaluation: the short side rescaled to ``base_size``, sliding
``crop x crop`` windows with ``stride`` (the mmsegmentation "slide" rule), logits averaged where
windows overlap, resized bilinearly back to the annotation's size, argmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from levyjepa.core.progress import progress_bar
from levyjepa.eval.benchmarks.semseg_data import IGNORE_INDEX, SegmentationSet
from levyjepa.eval.dense_metrics import confusion_matrix
from levyjepa.eval.segmentation_probe import LinearSegmentationHead

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
"""Frames ``(n, 3, H, W)`` in ``[0, 1]`` -> tokens ``(n, H / patch, W / patch, C)``."""

MIN_LR_FACTOR = 1 / 25_000
"""Final learning rate over peak (DINOv3's WarmupOneCycleLR: ``div_factor * final_div_factor``)."""


def learning_rate(step: int, *, lr: float, iterations: int, warmup: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based).

    Linear warm-up from ``lr / 25000`` to ``lr`` over ``warmup`` steps, then cosine annealing to
    ``lr / 25000`` at step ``iterations``; the cosine is a function of ``step / iterations`` (not of
    the steps after the warm-up), as in DINOv3's ``WarmupOneCycleLR``.
    """
    low = lr * MIN_LR_FACTOR
    if step < warmup:
        return low + (lr - low) * step / warmup
    return low + (lr - low) * (1 + math.cos(math.pi * min(step + 1, iterations) / iterations)) / 2


def rescale(image: torch.Tensor, label: torch.Tensor, short: float) -> tuple[torch.Tensor,
                                                                             torch.Tensor]:
    """Resize so that the short side is ``short`` px (aspect ratio kept).

    Args:
        image: float ``(3, H, W)``.
        label: int ``(H, W)``.
        short: The new short side.

    Returns:
        The image (bilinear) and labels (nearest) at the new size.
    """
    h, w = label.shape
    k = short / min(h, w)
    size = (max(1, round(h * k)), max(1, round(w * k)))
    if size == (h, w):
        return image, label
    img = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False,
                        antialias=k < 1)[0].clamp(0, 1)
    lab = F.interpolate(label[None, None].float(), size=size, mode="nearest")[0, 0].long()
    return img, lab


def augment(image: torch.Tensor, label: torch.Tensor, *, crop: int, base_size: int | None,
            scale: tuple[float, float], gen: torch.Generator) -> tuple[torch.Tensor,
                                                                       torch.Tensor]:
    """One training sample: random rescale, random crop (padded), random horizontal flip.

    Args:
        image: float ``(3, H, W)`` in ``[0, 1]``.
        label: int64 ``(H, W)``.
        crop: Side of the output.
        base_size: Short side before the random factor (``None``: the image's own).
        scale: Range of the random factor.
        gen: The random generator of this sample.

    Returns:
        float ``(3, crop, crop)`` (padding 0) and int64 ``(crop, crop)`` (padding 255).
    """
    r = scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=gen))
    image, label = rescale(image, label, (base_size or min(label.shape)) * r)
    h, w = label.shape
    y = int(torch.randint(max(h - crop, 0) + 1, (), generator=gen))
    x = int(torch.randint(max(w - crop, 0) + 1, (), generator=gen))
    image, label = image[:, y:y + crop, x:x + crop], label[y:y + crop, x:x + crop]
    ph, pw = crop - label.shape[0], crop - label.shape[1]
    if ph or pw:
        image = F.pad(image, (0, pw, 0, ph), value=0.0)
        label = F.pad(label, (0, pw, 0, ph), value=IGNORE_INDEX)
    if float(torch.rand((), generator=gen)) < 0.5:
        image, label = image.flip(-1), label.flip(-1)
    return image, label


class _TrainSamples(torch.utils.data.Dataset):
    """Augmented samples keyed by ``(image index, sample seed)`` (same samples with any workers)."""

    def __init__(self, data: SegmentationSet, **aug: object) -> None:
        self.data, self.aug = data, aug

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key
        image, label = self.data.load(index)
        return augment(image, label, gen=torch.Generator().manual_seed(seed), **self.aug)


class _Batches:
    """Batches of ``(index, seed)`` keys: reshuffled epochs, ``iterations`` batches in all."""

    def __init__(self, n: int, *, batch_size: int, iterations: int, seed: int) -> None:
        self.n, self.batch_size, self.iterations, self.seed = n, batch_size, iterations, seed

    def __len__(self) -> int:
        return self.iterations

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        gen = torch.Generator().manual_seed(self.seed)
        order: list[int] = []
        k = 0
        for _ in range(self.iterations):
            batch = []
            for _ in range(self.batch_size):
                if not order:
                    order = torch.randperm(self.n, generator=gen).tolist()
                batch.append((order.pop(), self.seed * 1_000_003 + k))
                k += 1
            yield batch


def tokens(features: FeatureFn, frames: torch.Tensor, patch: int) -> torch.Tensor:
    """The feature function's tokens of frames whose sides are multiples of ``patch``.

    Args:
        features: The feature function.
        frames: float ``(n, 3, H, W)``.
        patch: Its patch size.

    Returns:
        float32 ``(n, H / patch, W / patch, C)`` on the frames' device.

    Raises:
        ValueError: The function returned another shape.
    """
    with torch.no_grad():
        out = features(frames)
    n, _, h, w = frames.shape
    if out.ndim != 4 or tuple(out.shape[:3]) != (n, h // patch, w // patch):
        raise ValueError(f"the feature function returned {tuple(out.shape)} for frames "
                         f"{tuple(frames.shape)}; expected (n, H / {patch}, W / {patch}, C)")
    return out.to(frames.device).float()


def fit_head(features: FeatureFn, data: SegmentationSet, *, patch: int, iterations: int,
             batch_size: int, crop: int, base_size: int | None, lr: float, weight_decay: float,
             warmup: int, dropout: float = 0.1, scale: tuple[float, float] = (0.5, 2.0),
             device: str | torch.device = "cpu", seed: int = 0, workers: int = 0,
             progress: bool = True) -> LinearSegmentationHead:
    """Train the linear head on augmented crops of ``data`` (see the module docstring).

    Args:
        features: The frozen feature function (called without gradients).
        data: The training split.
        patch: The feature function's patch size; ``crop`` must be a multiple of it.
        iterations: Optimiser steps.
        batch_size: Crops per step.
        crop: Side of the training crops.
        base_size: Short side before the random scale factor (``None``: the image's own).
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup: Warm-up steps.
        dropout: Channel dropout of the head during training.
        scale: Range of the random scale factor.
        device: Where the frames, the features and the head live.
        seed: Seed of the initialisation, the sample order, the augmentations and the dropout.
        workers: DataLoader worker processes reading and augmenting the images.
        progress: Show a progress bar.

    Returns:
        The trained head in eval mode.
    """
    device = torch.device(device)
    samples = _TrainSamples(data, crop=crop, base_size=base_size, scale=scale)
    batches = _Batches(len(data), batch_size=batch_size, iterations=iterations, seed=seed)
    loader = torch.utils.data.DataLoader(samples, batch_sampler=batches, num_workers=workers)
    head = opt = None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for step, (image, label) in enumerate(progress_bar(loader, desc="semseg probe",
                                                           enable=progress)):
            x = tokens(features, image.to(device), patch)
            if head is None:
                head = LinearSegmentationHead(x.shape[-1], len(data.classes),
                                              dropout=dropout).to(device).train()
                opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, lr=lr, iterations=iterations, warmup=warmup)
            loss = F.cross_entropy(head(x, (crop, crop)), label.to(device),
                                   ignore_index=IGNORE_INDEX)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return head.eval()


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Start offsets of the sliding windows along one side (mmsegmentation's "slide" rule).

    ``max(size - crop + stride - 1, 0) // stride + 1`` windows at ``i * stride``, the last ones
    shifted back to end at ``size``; a side shorter than ``crop`` gets one window at 0.
    """
    count = max(size - crop + stride - 1, 0) // stride + 1
    return sorted({max(min(i * stride + crop, size) - crop, 0) for i in range(count)})


@torch.no_grad()
def sliding_logits(head: LinearSegmentationHead, features: FeatureFn, image: torch.Tensor, *,
                   patch: int, crop: int, stride: int, batch_size: int = 16) -> torch.Tensor:
    """Logits of one image from overlapping ``crop x crop`` windows, averaged where they overlap.

    Each window (``min(crop, H) x min(crop, W)``) is padded with zeros on the bottom and right to
    a multiple of ``patch``, its logits are upsampled to the padded size and the padding dropped.

    Args:
        head: The trained head (eval mode).
        features: The feature function.
        image: float ``(3, H, W)`` on the head's device.
        patch: The feature function's patch size.
        crop: Window side.
        stride: Step between windows.
        batch_size: Windows per call of the feature function.

    Returns:
        float32 ``(classes, H, W)``.
    """
    _, h, w = image.shape
    wh, ww = min(crop, h), min(crop, w)
    ph, pw = -wh % patch, -ww % patch
    boxes = [(y, x) for y in window_starts(h, crop, stride) for x in window_starts(w, crop, stride)]
    total = count = None
    for a in range(0, len(boxes), batch_size):
        part = boxes[a:a + batch_size]
        frames = torch.stack([image[:, y:y + wh, x:x + ww] for y, x in part])
        frames = F.pad(frames, (0, pw, 0, ph), value=0.0)
        logits = head(tokens(features, frames, patch), (wh + ph, ww + pw))[:, :, :wh, :ww]
        if total is None:
            total = image.new_zeros(logits.shape[1], h, w)
            count = image.new_zeros(1, h, w)
        for (y, x), z in zip(part, logits):
            total[:, y:y + wh, x:x + ww] += z
            count[:, y:y + wh, x:x + ww] += 1
    return total / count


@torch.no_grad()
def evaluate_head(head: LinearSegmentationHead, features: FeatureFn, data: SegmentationSet, *,
                  patch: int, crop: int, stride: int, base_size: int | None,
                  device: str | torch.device = "cpu", keep: int = 0,
                  progress: bool = True) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
    """Predict every image of ``data`` by sliding window and accumulate the confusion matrix.

    Args:
        head: The trained head.
        features: The feature function.
        data: The evaluation split.
        patch: The feature function's patch size.
        crop: Window side.
        stride: Window step.
        base_size: Short side the image is rescaled to before the windows (``None``: as is); the
            logits are resized back to the annotation's size before the argmax.
        device: Where the images go.
        keep: How many ``(image, label, prediction)`` triples to return (the first images).
        progress: Show a progress bar.

    Returns:
        The ``(C, C)`` int64 confusion matrix summed over the set (row = ground truth) and the
        kept triples (CPU).
    """
    head.eval()
    classes = len(data.classes)
    cm = torch.zeros(classes, classes, dtype=torch.long)
    kept = []
    for i in progress_bar(range(len(data)), desc="semseg eval", enable=progress):
        image, label = data.load(i)
        x = image.to(device)
        if base_size is not None:
            x, _ = rescale(x, label, base_size)
        logits = sliding_logits(head, features, x, patch=patch, crop=crop, stride=stride)
        if logits.shape[-2:] != label.shape:
            logits = F.interpolate(logits[None], size=tuple(label.shape), mode="bilinear",
                                   align_corners=False)[0]
        pred = logits.argmax(0).cpu()
        cm += confusion_matrix(pred, label, classes=classes, ignore_index=IGNORE_INDEX)
        if i < keep:
            kept.append((image, label, pred))
    return cm, kept
