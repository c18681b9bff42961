"""Batched image operations with one parameter per image, on float images in ``[0, 1]``.

Each function takes ``(M, 3, H, W)`` float images and per-image parameters ``(M,)`` and computes
what the torchvision functional of the same name computes on each image alone (same formulas:
ITU-R 601 luma weights, contrast against the mean luma, hue shifted in HSV, reflect-padded
Gaussian blur), so that a batch can be augmented in one pass on a GPU. The crop-resize reads
every crop of a view from its source image with ``torchvision.ops.roi_align`` (bilinear,
averaging ``ceil(crop / output)`` samples per output pixel and axis when it shrinks: an
anti-aliased resize without copying the source image once per view).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

LUMA = (0.299, 0.587, 0.114)
"""ITU-R 601 weights of R, G and B in the luma (grayscale) of an image."""


def crop_resize(images: torch.Tensor, boxes: torch.Tensor, source: torch.Tensor, size: int
                ) -> torch.Tensor:
    """Cut box ``m`` of image ``source[m]`` and resize it to ``size x size``.

    Args:
        images: ``(N, C, H, W)`` float images.
        boxes: ``(M, 4)`` boxes ``(left, top, right, bottom)`` in pixel edges (a pixel ``(y, x)``
            covers ``[x, x + 1) x [y, y + 1)``).
        source: ``(M,)`` index of each box's image in ``images``.
        size: Side of the square output.

    Returns:
        ``(M, C, size, size)`` crops; enlarging is bilinear with half-pixel centres (as
        ``interpolate(..., align_corners=False)``), shrinking averages bilinear samples.
    """
    rois = torch.cat([source[:, None].to(boxes.dtype), boxes], dim=1)
    rois = rois.to(device=images.device, dtype=images.dtype)
    return roi_align(images, rois, output_size=(size, size), spatial_scale=1.0,
                     sampling_ratio=-1, aligned=True)


def luma(images: torch.Tensor) -> torch.Tensor:
    """``(M, 3, H, W)`` to the ``(M, 1, H, W)`` luma (the grayscale image)."""
    r, g, b = images.unbind(dim=1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def _per_image(factor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return factor.to(device=like.device, dtype=like.dtype).view(-1, 1, 1, 1)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale every pixel by ``factor`` ``(M,)``, then clamp to ``[0, 1]``."""
    return (images * _per_image(factor, images)).clamp_(0.0, 1.0)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_image(factor, images)
    return (f * images + (1.0 - f) * other).clamp_(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean luma: ``factor`` 0 gives a grey image, 1 the image."""
    return _blend(images, luma(images).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the luma image: ``factor`` 0 gives grayscale, 1 the image."""
    return _blend(images, luma(images), factor)


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue by ``shift`` ``(M,)`` turns, keeping saturation and value.

    With ``v = max(r, g, b)``, ``d = v - min(r, g, b)`` and the hue ``h`` in sixths of a turn,
    channel ``c`` of the result is ``v - d * clamp(min(k, 4 - k), 0, 1)`` where
    ``k = (n_c + h) mod 6`` and ``n = (5, 3, 1)`` for ``(r, g, b)``: the HSV-to-RGB map written
    without branches.
    """
    r, g, b = images.unbind(dim=1)
    v = images.amax(dim=1)
    d = v - images.amin(dim=1)
    safe = torch.where(d > 0, d, torch.ones_like(d))
    h = torch.where(
        v == r, torch.remainder((g - b) / safe, 6.0),
        torch.where(v == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    h = h + 6.0 * shift.to(device=images.device, dtype=images.dtype).view(-1, 1, 1)
    n = torch.tensor([5.0, 3.0, 1.0], device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + h.unsqueeze(1), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return (v.unsqueeze(1) - d.unsqueeze(1) * ramp).clamp_(0.0, 1.0)


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """``(M, 3, H, W)`` to three equal channels holding the luma."""
    return luma(images).expand_as(images).contiguous()


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Blur image ``m`` with a ``kernel x kernel`` Gaussian of standard deviation ``sigma[m]``.

    The kernel is sampled at integer offsets and normalised, the image reflect-padded, as in
    torchvision's ``gaussian_blur``; done as two 1-D depthwise convolutions.

    Args:
        images: ``(M, C, H, W)`` float images (``H, W > kernel // 2``).
        sigma: ``(M,)`` positive standard deviations.
        kernel: Odd kernel side.
    """
    m, c, height, width = images.shape
    half = kernel // 2
    offsets = torch.arange(-half, half + 1, device=images.device, dtype=images.dtype)
    s = sigma.to(device=images.device, dtype=images.dtype).view(-1, 1)
    taps = torch.exp(-0.5 * (offsets / s) ** 2)
    taps = (taps / taps.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (M*C, k)
    x = F.pad(images.reshape(1, m * c, height, width), (half, half, half, half), mode="reflect")
    x = F.conv2d(x, taps.view(m * c, 1, 1, kernel), groups=m * c)
    x = F.conv2d(x, taps.view(m * c, 1, kernel, 1), groups=m * c)
    return x.view(m, c, height, width)


def solarize(images: torch.Tensor, threshold: float) -> torch.Tensor:
    """Invert (``1 - x``) every value at or above ``threshold``."""
    return torch.where(images >= threshold, 1.0 - images, images)
