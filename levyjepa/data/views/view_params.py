"""Per-view random parameters of the seed's augmentation (docs/seed_experiments.md), drawn for a
batch.

:func:`sample_view_params` draws, for every view of every image of a batch, the same random
quantities that :func:`levyjepa.data.views.transforms.ssl_augmentation` draws for one view, with the
same laws (``crop_scale`` and a :class:`levyjepa.data.views.photometric.Photometric`):

* crop: torchvision's ``RandomResizedCrop`` rule (up to 10 trials of an area fraction uniform in
  ``crop_scale`` and a log-uniform aspect ratio in ``[3/4, 4/3]``, sides rounded to whole pixels,
  the first trial that fits is placed uniformly; else the central crop of the clamped ratio);
* colour jitter: applied with ``color_jitter_p``; brightness, contrast and saturation factors
  uniform in ``[max(0, 1 - s), 1 + s]``, hue uniform in ``[-h, h]``, the four operations in a
  uniformly random order;
* grayscale, blur (sigma uniform in ``blur_sigma``), solarisation and horizontal flip, each
  applied with its own probability.

Every view draws its own parameters (a per-image transform applied to a whole batch would share
them). Parameters are drawn on the CPU from an explicit generator, so the views of a batch are a
function of the seed alone, whatever the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from levyjepa.data.views.photometric import Photometric

CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
"""Aspect-ratio range (width / height) of the random resized crop (torchvision's default)."""

CROP_TRIALS = 10
"""Draws of (area, ratio) before falling back to the central crop (torchvision's rule)."""

JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
"""Colour-jitter operations; ``ViewParams.order`` and ``ViewParams.factors`` index them."""


@dataclass
class ViewParams:
    """Random parameters of ``M = N * V`` views, view ``m`` cut from image ``source[m]``.

    Attributes:
        source: ``(M,)`` int64 index of each view's image in the batch (``m // V``).
        boxes: ``(M, 4)`` float64 crop boxes ``(left, top, right, bottom)`` in pixel edges of
            the source image (whole numbers).
        jitter: ``(M,)`` bool, colour jitter applied.
        factors: ``(M, 4)`` float64 brightness, contrast, saturation and hue factors.
        order: ``(M, 4)`` int64, each row a permutation of ``0..3`` (indices of
            :data:`JITTER_OPS`): the order of the jitter operations.
        gray: ``(M,)`` bool, converted to grayscale.
        blur: ``(M,)`` bool, blurred.
        sigma: ``(M,)`` float64 blur standard deviation (drawn for every view).
        solarize: ``(M,)`` bool, solarised.
        flip: ``(M,)`` bool, flipped horizontally.
    """

    source: torch.Tensor
    boxes: torch.Tensor
    jitter: torch.Tensor
    factors: torch.Tensor
    order: torch.Tensor
    gray: torch.Tensor
    blur: torch.Tensor
    sigma: torch.Tensor
    solarize: torch.Tensor
    flip: torch.Tensor

    def __len__(self) -> int:
        return int(self.source.numel())


def crop_area_fraction(params: ViewParams, *, height: int, width: int) -> torch.Tensor:
    """``(M,)`` area of each crop as a fraction of the ``height x width`` image."""
    sides = params.boxes[:, 2:] - params.boxes[:, :2]
    return sides[:, 0] * sides[:, 1] / (height * width)


def crop_aspect_ratio(params: ViewParams) -> torch.Tensor:
    """``(M,)`` width / height of each crop."""
    sides = params.boxes[:, 2:] - params.boxes[:, :2]
    return sides[:, 0] / sides[:, 1]


def sample_view_params(
    *,
    images: int,
    views: int,
    height: int,
    width: int,
    crop_scale: tuple[float, float],
    photometric: Photometric,
    generator: torch.Generator,
) -> ViewParams:
    """Draw the parameters of ``views`` views of each of ``images`` images of one size.

    Args:
        images: Number of images ``N`` in the batch.
        views: Views ``V`` per image.
        height: Image height ``H`` in pixels.
        width: Image width ``W`` in pixels.
        crop_scale: Area range of the crops, as fractions of the image.
        photometric: The photometric parameters whose probabilities, jitter strengths and
            blur range are the laws of the draws (the kernel and threshold are not drawn).
        generator: CPU generator every draw comes from.

    Returns:
        The parameters of ``M = N * V`` views, ordered image-major (views of image 0 first).

    Raises:
        ValueError: when a count or a size is not positive.
    """
    for name, value in (("images", images), ("views", views), ("height", height),
                        ("width", width)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    m = images * views

    def uniform(*shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)

    left, top, w, h = _crop_boxes(m, height, width, crop_scale, uniform)
    jitter = uniform(m) < photometric.color_jitter_p
    b, c, s, hue = photometric.color_jitter
    factors = torch.stack([
        uniform(m, low=max(0.0, 1.0 - b), high=1.0 + b),
        uniform(m, low=max(0.0, 1.0 - c), high=1.0 + c),
        uniform(m, low=max(0.0, 1.0 - s), high=1.0 + s),
        uniform(m, low=-hue, high=hue),
    ], dim=1)
    order = uniform(m, 4).argsort(dim=1)
    gray = uniform(m) < photometric.grayscale_p
    blur = uniform(m) < photometric.blur_p
    sigma = uniform(m, low=photometric.blur_sigma[0], high=photometric.blur_sigma[1])
    solarize = uniform(m) < photometric.solarize_p
    flip = uniform(m) < photometric.flip_p
    return ViewParams(
        source=torch.arange(images).repeat_interleave(views),
        boxes=torch.stack([left, top, left + w, top + h], dim=1),
        jitter=jitter, factors=factors, order=order, gray=gray, blur=blur, sigma=sigma,
        solarize=solarize, flip=flip,
    )


def _crop_boxes(m: int, height: int, width: int, scale: tuple[float, float], uniform
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left, top, width and height ``(m,)`` of random resized crops (torchvision's rule)."""
    area = height * width
    target = area * uniform(m, CROP_TRIALS, low=scale[0], high=scale[1])
    log_ratio = uniform(m, CROP_TRIALS, low=math.log(CROP_RATIO[0]), high=math.log(CROP_RATIO[1]))
    ratio = log_ratio.exp()
    w = (target * ratio).sqrt().round()  # round half to even, as Python's round
    h = (target / ratio).sqrt().round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)  # the first trial that fits
    found = fits.any(dim=1)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    # fallback: the central crop with the ratio clamped into range
    in_ratio = width / height
    if in_ratio < CROP_RATIO[0]:
        fw, fh = float(width), float(round(width / CROP_RATIO[0]))
    elif in_ratio > CROP_RATIO[1]:
        fw, fh = float(round(height * CROP_RATIO[1])), float(height)
    else:
        fw, fh = float(width), float(height)
    w = torch.where(found, w, torch.full_like(w, fw))
    h = torch.where(found, h, torch.full_like(h, fh))
    top = (uniform(m) * (height - h + 1)).floor()
    left = (uniform(m) * (width - w + 1)).floor()
    top = torch.where(found, top, ((height - h) // 2))
    left = torch.where(found, left, ((width - w) // 2))
    return left, top, w, h
