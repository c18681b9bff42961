"""Clip transforms: one random augmentation applied identically to every frame of a view.

A clip arrives as decoded uint8 RGB frames ``(T, H, W, 3)`` and leaves as a float, normalised
view ``(3, T, size, size)``. The frames are stacked as one torchvision ``Video`` ``(T, 3, H, W)``
and go through torchvision's v2 transforms, which draw their random parameters once per call
and apply them to every frame: the crop window, the flip and the colour change are the same
across a view's frames, so the motion inside the clip is untouched (as in VideoMAE, Tong et al.
2022, and V-JEPA, Bardes et al. 2024, whose crop scale ``(0.3, 1.0)`` is the default here).
Colour jitter is brightness, contrast and saturation from torchvision plus a hue rotation about
the grey axis (:class:`levyjepa.data.views.transforms.RandomHueRotation`, far cheaper per frame than
an HSV round trip). Normalisation uses the ImageNet mean and standard deviation.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from levyjepa.data.views.transforms import IMAGENET_MEAN, IMAGENET_STD, RandomHueRotation


def _frames(clip: np.ndarray | torch.Tensor) -> tv_tensors.Video:
    """uint8 ``(T, H, W, 3)`` frames as a torchvision ``Video`` ``(T, 3, H, W)``."""
    frames = torch.as_tensor(clip)
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} "
                         f"{tuple(frames.shape)}")
    return tv_tensors.Video(frames.permute(0, 3, 1, 2))


class ClipAugmentation:
    """The random view of a clip: crop, flip and colour drawn once, applied to every frame.

    Uses torch's global random generator (the datasets seed it per item and epoch).

    Args:
        size: Side of the square output frames.
        crop_scale: Area range of the random resized crop, as fractions of the frame.
        crop_ratio: Aspect-ratio range of the crop.
        flip_p: Probability of a horizontal flip.
        color_jitter: Brightness, contrast, saturation and hue strengths (hue in turns,
            ``<= 0.5``).
        color_jitter_p: Probability of applying the colour jitter.
        grayscale_p: Probability of turning the view grey.

    Raises:
        ValueError: naming the first invalid parameter and its valid range.
    """

    def __init__(
        self,
        *,
        size: int,
        crop_scale: tuple[float, float] = (0.3, 1.0),
        crop_ratio: tuple[float, float] = (0.75, 1.3333333333333333),
        flip_p: float = 0.5,
        color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
        color_jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
    ) -> None:
        check_size(size)
        for name, p in (("flip_p", flip_p), ("color_jitter_p", color_jitter_p),
                        ("grayscale_p", grayscale_p)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if len(crop_scale) != 2 or not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must be [low, high] with 0 < low <= high <= 1, got "
                             f"{list(crop_scale)}")
        if len(crop_ratio) != 2 or not 0.0 < crop_ratio[0] <= crop_ratio[1]:
            raise ValueError(f"crop_ratio must be [low, high] with 0 < low <= high, got "
                             f"{list(crop_ratio)}")
        if len(color_jitter) != 4 or min(color_jitter) < 0 or color_jitter[3] > 0.5:
            raise ValueError("color_jitter must be [brightness, contrast, saturation, hue], all "
                             f">= 0 and hue <= 0.5, got {list(color_jitter)}")
        brightness, contrast, saturation, hue = (float(x) for x in color_jitter)
        self.size = size
        self.transform = v2.Compose([
            v2.RandomResizedCrop(size, scale=tuple(crop_scale), ratio=tuple(crop_ratio),
                                 antialias=True),
            v2.RandomHorizontalFlip(p=flip_p),
            v2.ToDtype(torch.float32, scale=True),
            v2.RandomApply([v2.ColorJitter(brightness, contrast, saturation),
                            RandomHueRotation(hue)], p=color_jitter_p),
            v2.RandomGrayscale(p=grayscale_p),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])

    def __call__(self, clip: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` frames to one float view ``(3, T, size, size)``."""
        return torch.as_tensor(self.transform(_frames(clip))).permute(1, 0, 2, 3).contiguous()


class ClipCenterView:
    """The evaluation view: resize the short side, centre crop, normalise (every frame alike).

    Args:
        size: Side of the square output frames.
    """

    def __init__(self, *, size: int) -> None:
        check_size(size)
        self.size = size
        self.transform = v2.Compose([
            v2.Resize(size, antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])

    def __call__(self, clip: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` frames to a float view ``(3, T, size, size)``."""
        return torch.as_tensor(self.transform(_frames(clip))).permute(1, 0, 2, 3).contiguous()


def check_size(size: int) -> None:
    """Refuse a view side that is not a positive integer."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
