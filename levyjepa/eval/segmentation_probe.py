"""Linear semantic-segmentation probe on frozen patch features (issue 13).

The protocol is the "linear" one of DINOv2 (Oquab et al., "DINOv2: Learning Robust Visual
Features without Supervision", arXiv 2304.07193, 2023) and DINOv3 (Siméoni et al.,
"DINOv3", arXiv 2508.10104, 2025): a BatchNorm and a 1x1 convolution (a per-patch linear map) on
the frozen patch tokens, the logits bilinearly upsampled to the label resolution, pixel-wise
cross-entropy, AdamW with lr 1e-3 and weight decay 1e-3 (DINOv3's linear config), a fixed number
of iterations. Scores are mIoU over all classes, background included
(:func:`levyjepa.eval.dense_metrics.segmentation_scores`). Sized for a CPU: the features are
computed once, the probe only ever sees the token grid.

The "raw pixels" baseline the issue asks for is :func:`raw_pixel_features`: each patch's pixels
flattened into its feature vector, so a learned encoder that does not beat pixels shows as such.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from levyjepa.eval.dense_metrics import confusion_matrix, segmentation_scores


class LinearSegmentationHead(nn.Module):
    """``BatchNorm2d(D) -> Dropout2d(p) -> Conv2d(D, classes, 1)``, upsampled bilinearly.

    Args:
        dim: Feature dimension ``D``.
        classes: Number of classes ``C``.
        dropout: Channel dropout before the linear map (DINOv2's head has 0.1; 0 disables it).
    """

    def __init__(self, dim: int, classes: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(dim)
        self.dropout = nn.Dropout2d(dropout)
        self.conv = nn.Conv2d(dim, classes, kernel_size=1)

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Logits at the label resolution.

        Args:
            feats: ``(n, H', W', D)`` token grid (channels last, as ``EncoderOutput.tokens``).
            size: ``(H, W)`` of the label maps.

        Returns:
            ``(n, C, H, W)`` logits.
        """
        x = feats.permute(0, 3, 1, 2).float()
        logits = self.conv(self.dropout(self.bn(x)))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def fit_linear_segmentation(
    train_feats: torch.Tensor,
    train_maps: torch.Tensor,
    *,
    classes: int,
    iterations: int = 1000,
    lr: float = 1e-3,
    weight_decay: float = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
    ignore_index: int = 255,
    dropout: float = 0.0,
    device: str | torch.device = "cpu",
) -> LinearSegmentationHead:
    """Train the linear head on frozen features with a fixed budget of AdamW steps.

    Each step draws ``batch_size`` images with replacement from a generator seeded by ``seed``;
    the initialisation and dropout use the global RNG inside a forked, seeded scope (the caller's
    CPU and, on a CUDA ``device``, CUDA RNG states are left untouched), so the same inputs and
    seed give the same head on CPU (on a GPU up to its nondeterministic kernels).

    Args:
        train_feats: Float ``(n, H', W', D)`` frozen token grids.
        train_maps: Int ``(n, H, W)`` labels in ``[0, classes)`` or ``ignore_index``.
        classes: Number of classes ``C`` (>= 2), background included.
        iterations: Number of optimiser steps (>= 1).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: Images per step (>= 1).
        seed: Seed of the initialisation, the mini-batches and the dropout.
        ignore_index: Label that marks pixels left out of the loss.
        dropout: Channel dropout of the head (see :class:`LinearSegmentationHead`).
        device: Where the head is trained; features move there one batch at a time.

    Returns:
        The trained head, in eval mode, on ``device``.

    Raises:
        ValueError: Naming the offending argument (shapes, counts, label range, budgets).
    """
    _check_pair("train_feats", train_feats, "train_maps", train_maps)
    _check_int("classes", classes, 2)
    _check_int("iterations", iterations, 1)
    _check_int("batch_size", batch_size, 1)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
    labels = train_maps[train_maps != ignore_index]
    if labels.numel() == 0:
        raise ValueError("train_maps: every pixel equals ignore_index; nothing to train on")
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"train_maps: labels must lie in [0, {classes}) or be {ignore_index}")
    device = torch.device(device)
    size = tuple(train_maps.shape[-2:])
    picker = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        head = LinearSegmentationHead(train_feats.shape[-1], classes, dropout=dropout).to(device)
        opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
        head.train()
        for _ in range(iterations):
            idx = torch.randint(len(train_feats), (batch_size,), generator=picker)
            x = train_feats[idx].to(device)
            y = train_maps[idx].to(device).long()
            loss = F.cross_entropy(head(x, size), y, ignore_index=ignore_index)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return head.eval()


@torch.no_grad()
def predict_segmentation(
    head: LinearSegmentationHead,
    feats: torch.Tensor,
    *,
    size: int | tuple[int, int],
    batch_size: int = 64,
) -> torch.Tensor:
    """Argmax label maps of a trained head.

    Args:
        head: A head from :func:`fit_linear_segmentation` (used in eval mode).
        feats: Float ``(n, H', W', D)`` token grids.
        size: ``H`` (square) or ``(H, W)`` of the output maps.
        batch_size: Images per forward pass.

    Returns:
        Int64 ``(n, H, W)`` predicted labels, on CPU.
    """
    if feats.ndim != 4:
        raise ValueError(f"feats must be (n, H', W', D), got shape {tuple(feats.shape)}")
    _check_int("batch_size", batch_size, 1)
    size = (size, size) if isinstance(size, int) else tuple(size)
    device = next(head.parameters()).device
    head.eval()
    out = [head(feats[a : a + batch_size].to(device), size).argmax(1).cpu()
           for a in range(0, len(feats), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, *size, dtype=torch.long)


def evaluate_linear_segmentation(
    train_feats: torch.Tensor,
    train_maps: torch.Tensor,
    test_feats: torch.Tensor,
    test_maps: torch.Tensor,
    *,
    classes: int,
    ignore_index: int = 255,
    **fit_kwargs: object,
) -> dict:
    """Fit the probe on the train split and score it on the test split.

    Args:
        train_feats: Float ``(n, H', W', D)``.
        train_maps: Int ``(n, H, W)``.
        test_feats: Float ``(m, H', W', D)`` (same ``D``).
        test_maps: Int ``(m, H, W)``.
        classes: Number of classes ``C`` (>= 2).
        ignore_index: Label left out of the loss and the scores.
        **fit_kwargs: Other keyword arguments of :func:`fit_linear_segmentation`.

    Returns:
        ``{"miou", "pixel_acc", "iou" (list of C, nan for absent classes), "present"}`` as
        :func:`levyjepa.eval.dense_metrics.segmentation_scores` computes them from the confusion
        matrix summed over the test set.
    """
    _check_pair("test_feats", test_feats, "test_maps", test_maps)
    if test_feats.shape[-1] != train_feats.shape[-1]:
        raise ValueError(f"test_feats: feature dim {test_feats.shape[-1]} != train "
                         f"{train_feats.shape[-1]}")
    head = fit_linear_segmentation(train_feats, train_maps, classes=classes,
                                   ignore_index=ignore_index, **fit_kwargs)
    pred = predict_segmentation(head, test_feats, size=tuple(test_maps.shape[-2:]))
    cm = confusion_matrix(pred, test_maps.cpu(), classes=classes, ignore_index=ignore_index)
    return segmentation_scores(cm)


def raw_pixel_features(images: torch.Tensor, *, patch_size: int) -> torch.Tensor:
    """The raw-pixels baseline: each ``p x p`` patch's pixels as its feature vector.

    Args:
        images: ``(n, C, H, W)``, uint8 (scaled to ``[0, 1]``) or float (kept as is); ``H`` and
            ``W`` multiples of ``p``.
        patch_size: Patch side ``p`` (>= 1).

    Returns:
        Float32 ``(n, H/p, W/p, C*p*p)``; the vector of a patch is ordered (channel, row, col).
    """
    _check_int("patch_size", patch_size, 1)
    if images.ndim != 4:
        raise ValueError(f"images must be (n, C, H, W), got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"patch_size {p} must divide the image size {h}x{w}")
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    x = x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(n, h // p, w // p, c * p * p)


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_pair(fname: str, feats: torch.Tensor, mname: str, maps: torch.Tensor) -> None:
    if feats.ndim != 4 or not feats.is_floating_point():
        raise ValueError(f"{fname} must be float (n, H', W', D), got {feats.dtype} "
                         f"{tuple(feats.shape)}")
    if maps.ndim != 3 or maps.is_floating_point() or maps.dtype == torch.bool:
        raise ValueError(f"{mname} must be integer (n, H, W), got {maps.dtype} "
                         f"{tuple(maps.shape)}")
    if len(feats) != len(maps):
        raise ValueError(f"{fname} has {len(feats)} images but {mname} has {len(maps)}")
    if len(feats) == 0:
        raise ValueError(f"{fname} is empty")
