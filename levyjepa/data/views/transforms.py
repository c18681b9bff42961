"""Image transforms (torchvision transforms v2) shared by image data sources."""

from __future__ import annotations

import math

import torch
from torchvision.transforms import v2

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
    color_jitter: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 0.2),
    color_jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
    blur_kernel: int = 7,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    blur_p: float = 0.5,
    solarize_threshold: int = 128,
    solarize_p: float = 0.1,
    flip_p: float = 0.5,
) -> v2.Compose:
    """The seed experiments' training view of a natural image (docs/seed_experiments.md).

    RandomResizedCrop, colour jitter, grayscale, Gaussian blur, solarisation and a horizontal
    flip on the 8-bit image (a PIL image or a uint8 tensor ``(C, H, W)``), then conversion to
    float in ``[0, 1]`` and ImageNet normalisation. Working in 8 bits keeps the solarisation
    threshold on the 0-255 scale as in the seed (torchvision refuses a threshold above 1 on a
    float image rather than silently never solarising).

    The seed wraps ``RandomSolarize(threshold=128)``, whose own probability is torchvision's
    default 0.5, in ``RandomApply(p=0.2)``: a view is solarised with probability 0.1, the
    default of ``solarize_p`` here (one probability, same distribution).

    Args:
        size: Side of the square output view.
        crop_scale: Area range of the random resized crop, as fractions of the image.
        color_jitter: Brightness, contrast, saturation and hue strengths.
        color_jitter_p: Probability of applying the colour jitter.
        grayscale_p: Probability of converting to grayscale.
        blur_kernel: Odd side of the Gaussian blur kernel.
        blur_sigma: Range of the blur's standard deviation.
        blur_p: Probability of blurring.
        solarize_threshold: Solarisation threshold on the 0-255 scale.
        solarize_p: Probability of solarising.
        flip_p: Probability of a horizontal flip.

    Returns:
        A transform from one 8-bit image to a float tensor ``(3, size, size)``.

    Raises:
        ValueError: naming the first invalid parameter and its valid range.
    """
    _check_positive_int("size", size)
    for name, p in (("color_jitter_p", color_jitter_p), ("grayscale_p", grayscale_p),
                    ("blur_p", blur_p), ("solarize_p", solarize_p), ("flip_p", flip_p)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    low, high = _pair("crop_scale", crop_scale)
    if not 0.0 < low <= high <= 1.0:
        raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {list(crop_scale)}")
    if len(color_jitter) != 4 or min(color_jitter) < 0 or color_jitter[3] > 0.5:
        raise ValueError("color_jitter must be [brightness, contrast, saturation, hue], all >= 0 "
                         f"and hue <= 0.5, got {list(color_jitter)}")
    _check_positive_int("blur_kernel", blur_kernel)
    if blur_kernel % 2 == 0:
        raise ValueError(f"blur_kernel must be odd, got {blur_kernel}")
    sigma_low, sigma_high = _pair("blur_sigma", blur_sigma)
    if not 0.0 < sigma_low <= sigma_high:
        raise ValueError(f"blur_sigma must satisfy 0 < low <= high, got {list(blur_sigma)}")
    if not 0 <= solarize_threshold <= 255:
        raise ValueError(f"solarize_threshold must be in 0..255, got {solarize_threshold}")
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(low, high), antialias=True),
        v2.RandomApply([v2.ColorJitter(*color_jitter)], p=color_jitter_p),
        v2.RandomGrayscale(p=grayscale_p),
        v2.RandomApply([v2.GaussianBlur(blur_kernel, sigma=(sigma_low, sigma_high))], p=blur_p),
        v2.RandomSolarize(threshold=solarize_threshold, p=solarize_p),
        v2.RandomHorizontalFlip(p=flip_p),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def center_view(size: int) -> v2.Compose:
    """The seed's test view: Resize(size), CenterCrop(size), float, ImageNet normalisation.

    Accepts a PIL image or a uint8 tensor ``(C, H, W)``; returns a float tensor
    ``(3, size, size)``.
    """
    _check_positive_int("size", size)
    return v2.Compose([
        v2.Resize(size, antialias=True),
        v2.CenterCrop(size),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _pair(name: str, value: tuple[float, float]) -> tuple[float, float]:
    if len(value) != 2:
        raise ValueError(f"{name} must be [low, high], got {list(value)}")
    return float(value[0]), float(value[1])
