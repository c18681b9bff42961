"""Procedural labelled images: one foreground shape over a "dead leaves" background.

The background follows the dead leaves (occlusion) model of G. Matheron, "Modèle séquentiel de
partition aléatoire", technical report, Centre de Morphologie Mathématique, 1968, studied as a
model of natural image statistics by A. B. Lee, D. Mumford and J. Huang, "Occlusion models for
natural images: a statistical study of a scale-invariant dead leaves model", International
Journal of Computer Vision 41(1/2), 2001. Opaque disks ("leaves") with random centres, colours
and radii are painted one over the other (painter's order: a later leaf hides the earlier ones
under it). Radii follow the scale-invariant density ``p(r) ∝ r^-3`` on ``[r_min, r_max]``, the
law under which Lee, Mumford and Huang find the model's statistics to match natural images:
many small leaves, few large ones, and the same picture at every scale in between. Each leaf
carries a faint linear colour gradient and the whole image a mild multiplicative shading ramp,
so the result is piecewise smooth with sharp occlusion edges, like a natural image. Leaf
colours are muted (contrast ``_BG_CONTRAST`` around mid grey).

On top, one opaque foreground shape of ``SHAPE_CLASSES[label]`` is drawn at a random, roughly
central position (fully inside the image), with a random rotation and a circumscribed diameter
of 38-60 % of the image side. Its colour is, of a dozen random saturated candidates, the one
farthest in RGB from the mean background along its outline, so the shape always stands out.
The foreground is anti-aliased (2x2 supersampling); the leaves are rendered at the output
resolution.

With ``instances > 1`` the image holds that many smaller shapes of its class, one per cell of a
square layout (no two overlap), each placed in its cell, sized, turned and coloured
independently.

Everything is a pure function of ``(seed, index, size, classes, leaves, rotation, instances)``.
Random numbers are counter based: uniform ``j`` of image ``index`` is a SplitMix64 hash of
``(seed, index, j)`` (each extra shape instance has a stream of its own), computed for a whole
batch at once, and labels come from a hash of ``(seed, block)`` (every aligned block of
``classes`` consecutive indices holds each class once, in a random order).
The pixel work, vectorised across the batch, uses only elementwise operations that are exact
or correctly rounded and integer reductions, so a slice of a batch equals the batch of that
slice bit for bit, whatever the number of threads.

This module holds the argument checks, the background (:func:`render_background`), the
shading (:func:`shade_and_quantise`) and :func:`render_shapes`; the foreground shapes are in
:mod:`levyjepa.data.generated.shape_masks` and the random streams and per-image parameters in
:mod:`levyjepa.data.generated.random_streams`.

Example:
    >>> images, labels = render_shapes(1000, size=32, seed=0)
    >>> images.shape, images.dtype, labels[:3]
    (torch.Size([1000, 3, 32, 32]), torch.uint8, tensor([5, 7, 3]))
"""

from __future__ import annotations

import math

import numpy as np
import torch

from levyjepa.core.errors import ConfigError
from levyjepa.data.generated.random_streams import (
    H_BASE,
    H_SHADE,
    balanced_labels,
    draw_params,
    instance_params,
    shape_cells,
)
from levyjepa.data.generated.shape_masks import SHAPE_CLASSES, paint_shape

__all__ = ["SHAPE_CLASSES", "check_image_args", "render_background", "render_shapes",
           "shade_and_quantise"]

# Leaf radii as a fraction of the image side (density ∝ r^-3 between the two).
_R_MIN = 0.05
_R_MAX = 0.6
# Contrast of the background colours around mid grey (1 = the full RGB cube). A muted
# background keeps the saturated foreground the most salient object: with full contrast a tiny
# ViT stays at chance for several minutes of CPU training, with 0.5 it learns at once.
_BG_CONTRAST = 0.55
# Largest leaf gradient (colour change per image side) and shading amplitude (relative change
# of brightness per image side).
_LEAF_GRADIENT = 0.35
_SHADING = 0.3
# Pixels per chunk of the batch, to keep the working set in cache.
_CHUNK_PIXELS = 1 << 19


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int, or raise a ``ValueError`` naming ``name`` and the range."""
    valid = f">= {low}" if high is None else f"in {low}..{high}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer {valid}, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {valid}, got {value}")
    return value


def check_image_args(*, size: object, classes: object, leaves: object, rotation: object,
                     instances: object) -> None:
    """Refuse an image parameter of :func:`render_shapes` (the ones a data source exposes).

    Raises:
        ValueError: naming the parameter and its valid range.
    """
    _check_int("size", size, 8)
    _check_int("classes", classes, 2, len(SHAPE_CLASSES))
    _check_int("leaves", leaves, 0)
    _check_int("instances", instances, 1)
    if (isinstance(rotation, bool) or not isinstance(rotation, (int, float))
            or not 0.0 <= rotation <= 1.0):
        raise ValueError(f"rotation must be a number in [0, 1], got {rotation!r}")


def _colours(value: np.ndarray, sat: np.ndarray, hue: np.ndarray) -> np.ndarray:
    """Map uniforms to a background RGB colour: a grey level plus a zero-mean random tint.

    Args:
        value: Grey level uniforms, shape ``(...)``.
        sat: Saturation uniforms, shape ``(...)``.
        hue: Tint uniforms, shape ``(..., 3)``.
    """
    grey = 0.1 + 0.8 * value
    tint = hue - (hue[..., 0:1] + hue[..., 1:2] + hue[..., 2:3]) / 3.0
    rgb = np.clip(grey[..., None] + (0.15 + 0.6 * sat[..., None]) * tint, 0.0, 1.0)
    # Muted towards mid grey, so that the saturated foreground is the most salient object.
    return 0.5 + _BG_CONTRAST * (rgb - 0.5)


def _render_chunk(
    head: np.ndarray,
    trig: np.ndarray,
    leaf: np.ndarray,
    labels: np.ndarray,
    size: int,
    shapes: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    grid: int,
) -> torch.Tensor:
    """Render one chunk of images from their parameters; returns uint8 ``(n, 3, size, size)``.

    ``head``, ``trig`` and ``leaf`` describe the background (and the shading); ``shapes`` holds
    the ``(head, trig, cell)`` of every foreground shape, painted in order, each in its cell of
    a ``grid x grid`` layout.
    """
    img = render_background(head, leaf, size)
    for head_j, trig_j, cell_j in shapes:
        img = paint_shape(img, head_j, trig_j, labels, size, grid, cell_j)
    return shade_and_quantise(img, head, trig, size)


def render_background(head: np.ndarray, leaf: np.ndarray, size: int) -> torch.Tensor:
    """The dead leaves background of each image, before shading.

    Args:
        head: Per-image uniforms ``(n, HEAD)`` from
            :func:`~levyjepa.data.generated.random_streams.draw_params` (the base colour).
        leaf: Per-leaf uniforms ``(n, leaves, LEAF)`` from the same.
        size: Side of the images in pixels.

    Returns:
        Float tensor ``(3, n, size * size)`` in ``[0, 1]``, channels first, pixels row-major.
    """
    n, leaves = leaf.shape[0], leaf.shape[1]
    f32 = torch.float32
    # Pixel centres in pixel units.
    pix = torch.arange(size, dtype=f32) + 0.5

    # ---- background: base colour, then leaves in painter's order -------------------------
    # owner[b, y, x] is 0 for the base layer or 1 + the index of the last leaf covering the
    # pixel. A disk covers (x, y) iff r^2 - (x - cx)^2 - (y - cy)^2 > 0, a sum of per-column and
    # per-row terms, so each leaf costs one broadcast subtraction over the image. Its sign,
    # times k + 1, is k + 1 inside the leaf and <= 0 outside, and a running maximum over the
    # leaves in painter's order keeps the last one (several times faster than masked_fill_).
    cx = torch.from_numpy(leaf[..., 0] * size).to(f32)
    cy = torch.from_numpy(leaf[..., 1] * size).to(f32)
    # Inverse CDF of p(r) ∝ r^-3 on [r_min, r_max]: r^-2 is uniform between r_max^-2, r_min^-2.
    inv2_min, inv2_max = _R_MIN**-2, _R_MAX**-2
    radius = size / np.sqrt(inv2_min - leaf[..., 2] * (inv2_min - inv2_max))
    rad = torch.from_numpy(radius).to(f32)
    dy2 = (pix[None, None, :] - cy[..., None]) ** 2  # (n, leaves, size) over rows
    rhs = rad[..., None] ** 2 - (pix[None, None, :] - cx[..., None]) ** 2  # over columns
    owner = torch.zeros((n, size, size), dtype=f32)
    for k in range(leaves):
        inside = torch.sub(rhs[:, k, None, :], dy2[:, k, :, None]).sign_().mul_(k + 1)
        torch.maximum(owner, inside, out=owner)
    # Column of each pixel's layer in the flattened (5, n * (leaves + 1)) layer table.
    first = torch.arange(0, n * (leaves + 1), leaves + 1)[:, None]
    owner = owner.reshape(n, size * size).long().add_(first).reshape(-1)

    # Layer table (base first): colour at the leaf centre plus a linear gradient shared by the
    # three channels, value(p) = colour + g . (p - centre) / size = offset + g . p / size.
    # Everything per pixel is laid out channels first, (channel, image, pixel), so that every
    # elementwise operation runs over long contiguous rows.
    base = _colours(head[:, H_BASE], head[:, H_BASE + 1], head[:, H_BASE + 2 : H_BASE + 5])
    cols = _colours(leaf[..., 3], leaf[..., 4], leaf[..., 5:8])  # (n, leaves, 3)
    grad = _LEAF_GRADIENT * (2.0 * leaf[..., 8:10] - 1.0)  # (n, leaves, 2), per image side
    offset = cols - (grad[..., 0:1] * leaf[..., 0:1] + grad[..., 1:2] * leaf[..., 1:2])
    table = np.zeros((5, n, leaves + 1))
    table[:3, :, 0] = base.T
    table[:3, :, 1:] = offset.transpose(2, 0, 1)
    table[3:, :, 1:] = grad.transpose(2, 0, 1) / size
    table_t = torch.from_numpy(table.reshape(5, -1)).to(f32)
    per_pixel = torch.empty((5, n * size * size), dtype=f32)
    for c in range(5):
        torch.index_select(table_t[c], 0, owner, out=per_pixel[c])
    per_pixel = per_pixel.view(5, n, size * size)
    xs = pix.repeat(size)  # x of each flattened pixel
    ys = pix.repeat_interleave(size)
    slope = per_pixel[3] * xs + per_pixel[4] * ys
    return per_pixel[:3].add_(slope).clamp_(0.0, 1.0)  # (3, n, size * size)


def shade_and_quantise(
    img: torch.Tensor, head: np.ndarray, trig: np.ndarray, size: int
) -> torch.Tensor:
    """Apply each image's shading ramp to ``img`` (in place) and round it to uint8.

    Args:
        img: Float tensor ``(3, n, size * size)`` in ``[0, 1]``, as from
            :func:`render_background`.
        head: Per-image uniforms ``(n, HEAD)`` (the shading amplitude).
        trig: ``(n, 4)`` from :func:`~levyjepa.data.generated.random_streams.draw_params`
            (columns 2 and 3: the shading direction).
        size: Side of the images in pixels.

    Returns:
        uint8 tensor ``(n, 3, size, size)`` (a channels-first view).
    """
    n, f32 = head.shape[0], torch.float32
    pix = torch.arange(size, dtype=f32) + 0.5
    xs = pix.repeat(size)  # x of each flattened pixel
    ys = pix.repeat_interleave(size)
    # Mild multiplicative shading ramp along a random direction through the image centre.
    amp = _SHADING * head[:, H_SHADE] / size
    sx = torch.from_numpy(amp * trig[:, 2]).to(f32)[:, None]
    sy = torch.from_numpy(amp * trig[:, 3]).to(f32)[:, None]
    half = size / 2.0
    shade = (xs - half) * sx + (ys - half) * sy + 1.0  # (n, size * size)
    img = img.mul_(shade).clamp_(0.0, 1.0).mul_(255.0).add_(0.5)
    # Truncation of values in [0.5, 255.5] rounds to nearest; via int16, much faster than a
    # direct float -> uint8 conversion.
    out = img.to(torch.int16).to(torch.uint8)
    return out.view(3, n, size, size).permute(1, 0, 2, 3)


def render_shapes(
    count: int,
    *,
    size: int,
    seed: int,
    start: int = 0,
    classes: int = 10,
    leaves: int = 32,
    rotation: float = 1.0,
    instances: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render labelled shape images over dead leaves backgrounds.

    Image ``i`` of the result is the image of global index ``start + i`` and depends only on
    ``(seed, start + i, size, classes, leaves)``, so ``render_shapes(10, start=5, ...)`` equals
    rows 5 to 14 of ``render_shapes(20, start=0, ...)``. Labels are balanced: each aligned
    block of ``classes`` consecutive global indices holds every class exactly once.

    Args:
        count: Number of images (>= 0).
        size: Side of the square images in pixels (>= 8).
        seed: Seed of the dataset; any integer (taken modulo 2^64).
        start: Global index of the first image (>= 0).
        classes: Number of classes (2..10); label ``k`` is the shape ``SHAPE_CLASSES[k]``.
        leaves: Number of background leaves per image (>= 0; 0 gives a plain shaded colour).
        rotation: Range of the shape's rotation, as a fraction of a full turn (0: upright
            shapes, an easier task; 1: any angle).
        instances: Number of shapes of the image's class (>= 1). The image is divided into the
            smallest square layout of ``g x g >= instances`` cells; each shape gets a cell of
            its own (a random one) and its own position in it, size, angle and colour, scaled
            to the cell as one shape is to the image. Many small instances make the class a
            local, crop-invariant property of the image (a "texture of shapes"), which a small
            ViT learns in a few hundred steps; one large shape makes it a global property,
            which takes far longer.

    Returns:
        ``(images, labels)``: ``images`` uint8 of shape ``(count, 3, size, size)`` and
        ``labels`` int64 of shape ``(count,)``.

    Raises:
        ConfigError: A ``ValueError`` naming the invalid argument and its valid range.
    """
    try:
        count = _check_int("count", count, 0)
        start = _check_int("start", start, 0)
        check_image_args(size=size, classes=classes, leaves=leaves, rotation=rotation,
                         instances=instances)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
    except ValueError as err:
        raise ConfigError(f"render_shapes: {err}") from None
    size, classes, leaves, instances = int(size), int(classes), int(leaves), int(instances)
    grid = math.isqrt(instances - 1) + 1  # the smallest square layout with a cell per shape
    seed = int(seed) % (1 << 64)  # the hash works on unsigned 64-bit words

    images = torch.empty((count, 3, size, size), dtype=torch.uint8)
    labels = np.empty(count, dtype=np.int64)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for lo in range(0, count, chunk):
        hi = min(count, lo + chunk)
        lab = balanced_labels(start + lo, hi - lo, seed, classes)
        head, trig, leaf = draw_params(start + lo, hi - lo, seed, leaves, rotation)
        cells = shape_cells(start + lo, hi - lo, seed, grid) if instances > 1 else None
        shapes = [(head, trig, None if cells is None else cells[:, 0])]
        for j in range(1, instances):
            shapes.append((*instance_params(start + lo, hi - lo, seed, j, rotation), cells[:, j]))
        # copies channels-first
        images[lo:hi] = _render_chunk(head, trig, leaf, lab, size, shapes, grid)
        labels[lo:hi] = lab
    return images, torch.from_numpy(labels)
