"""Image transforms (torchvision transforms v2) shared by image data sources."""

from __future__ import annotations

import math

import torch
from torchvision.transforms import v2

from levyjepa.core.arg_checks import check_positive_int, float_pair
from levyjepa.data.views.photometric import (
    SEED_PHOTOMETRIC,
    Photometric,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RandomHueRotation(torch.nn.Module):
    """Rotate colours about the grey axis of RGB by a random angle (a linear hue shift).

    A hue shift of ``h`` turns (a fraction of the colour wheel) is, to first order, a rotation
    by ``2 pi h`` of the RGB cube about its diagonal ``(1, 1, 1)``: grey stays grey, brightness
    ``(r + g + b) / 3`` is preserved, chroma turns. As one 3x3 matrix per image it costs a
    matrix product, where torchvision's exact HSV round trip costs about 10 ms per small image on
    a CPU core. Works on float images in ``[0, 1]``, ``(C, H, W)``, or a stack of them
    ``(..., C, H, W)`` (the frames of a clip), which all get the same rotation.

    Args:
        max_shift: Largest shift in turns, in ``[0, 0.5]``; the shift is uniform in
            ``[-max_shift, max_shift]``.
    """

    def __init__(self, max_shift: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= max_shift <= 0.5:
            raise ValueError(f"max_shift must be in [0, 0.5], got {max_shift}")
        self.max_shift = max_shift

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        theta = (2 * torch.rand(()).item() - 1) * self.max_shift * 2 * math.pi
        c, s = math.cos(theta), math.sin(theta)
        # Rodrigues' formula for the rotation about the unit axis (1, 1, 1) / sqrt(3).
        a, b = (1 - c) / 3, s / math.sqrt(3)
        rot = torch.tensor([[c + a, a - b, a + b], [a + b, c + a, a - b], [a - b, a + b, c + a]],
                           dtype=image.dtype, device=image.device)
        return torch.einsum("ij,...jhw->...ihw", rot, image).clamp_(0.0, 1.0)


def light_augmentation(size: int, *, crop_scale: tuple[float, float]) -> v2.Compose:
    """Crop, flip and colour augmentation for small synthetic images, then normalisation."""
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=crop_scale, antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4), RandomHueRotation(0.5)], p=0.8),
        v2.RandomGrayscale(p=0.2),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def eval_transform(size: int) -> v2.Compose:
    """Resize, centre crop and normalise (the test view)."""
    return v2.Compose([
        v2.Resize(size, antialias=True),
        v2.CenterCrop(size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def ssl_augmentation(
    size: int,
    *,
    crop_scale: tuple[float, float] = (0.08, 1.0),
    photometric: Photometric = SEED_PHOTOMETRIC,
) -> v2.Compose:
    """The seed experiments' training view of a natural image (docs/seed_experiments.md).

    RandomResizedCrop, colour jitter, grayscale, Gaussian blur, solarisation and a horizontal
    flip on the 8-bit image (a PIL image or a uint8 tensor ``(C, H, W)``), then conversion to
    float in ``[0, 1]`` and ImageNet normalisation. Working in 8 bits keeps the solarisation
    threshold on the 0-255 scale as in the seed (torchvision refuses a threshold above 1 on a
    float image rather than silently never solarising).

    The seed wraps ``RandomSolarize(threshold=128)``, whose own probability is torchvision's
    default 0.5, in ``RandomApply(p=0.2)``: a view is solarised with probability 0.1, the
    default of ``Photometric.solarize_p`` (one probability, same distribution).

    Args:
        size: Side of the square output view.
        crop_scale: Area range of the random resized crop, as fractions of the image.
        photometric: Colour jitter, grayscale, blur, solarisation and flip parameters
            (checked here by :meth:`Photometric.check`).

    Returns:
        A transform from one 8-bit image to a float tensor ``(3, size, size)``.

    Raises:
        ValueError: naming the first invalid parameter and its valid range.
    """
    check_positive_int("size", size)
    low, high = float_pair("crop_scale", crop_scale)
    if not 0.0 < low <= high <= 1.0:
        raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {list(crop_scale)}")
    photometric.check()
    p = photometric
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(low, high), antialias=True),
        v2.RandomApply([v2.ColorJitter(*p.color_jitter)], p=p.color_jitter_p),
        v2.RandomGrayscale(p=p.grayscale_p),
        v2.RandomApply([v2.GaussianBlur(p.blur_kernel,
                                        sigma=float_pair("blur_sigma", p.blur_sigma))],
                       p=p.blur_p),
        v2.RandomSolarize(threshold=p.solarize_threshold, p=p.solarize_p),
        v2.RandomHorizontalFlip(p=p.flip_p),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def center_view(size: int) -> v2.Compose:
    """The seed's test view: Resize(size), CenterCrop(size), float, ImageNet normalisation.

    Accepts a PIL image or a uint8 tensor ``(C, H, W)``; returns a float tensor
    ``(3, size, size)``.
    """
    check_positive_int("size", size)
    return v2.Compose([
        v2.Resize(size, antialias=True),
        v2.CenterCrop(size),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
