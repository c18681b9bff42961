"""Saccade JEPA's two views of an image and the exact motion between them.

The ``saccade`` method (:mod:`levyjepa.methods.saccade`) makes its views itself, so that the
motion relating them is known exactly. From a full image of ``H x W`` pixels:

* view 2 is the centre crop of side ``c``: pixel ``(i, j)`` is the image's ``(o_y + i, o_x + j)``
  with ``o_y = (H - c) // 2``, ``o_x = (W - c) // 2``;
* view 1 is the same crop after a *motion* ``g = (theta, t)``, a rotation by ``theta`` about the
  crop's centre and a translation ``t = (t_x, t_y)`` in pixels. Writing a crop pixel as its offset
  from the crop's centre, ``p = (j - (c - 1) / 2, i - (c - 1) / 2)`` (``x`` to the right, ``y``
  down), ``g(p) = R(theta) p + t`` with ``R(theta) = [[cos, -sin], [sin, cos]]`` acting on
  ``(x, y)``, and

  ``view1(p) = image(centre + g(p))``, ``view2(p) = image(centre + p)``,

  so ``view1(p) = view2(g(p))`` wherever ``g(p)`` falls inside view 2. The source coordinate of
  every output pixel is computed in float64 and rounded half up (nearest-neighbour
  interpolation: every pixel of view 1 is a pixel of the image, nothing is blended); a source
  outside the image takes the nearest border pixel, which with the defaults can only happen in
  the corners (the rotation reaches up to ``(c / 2) (|sin theta| + 1 - cos theta)`` pixels past
  the translation).

Motions are rigid maps of the plane: :func:`invert` (``g^{-1}(q) = R(-theta) (q - t)``, so
``(-theta, -R(-theta) t)``) and :func:`compose` (``(a o b)(p) = a(b(p))``) are exact, and
``compose(g, invert(g))`` is the identity. :func:`draw` draws ``theta`` uniform in ``[-r, r]``
and each of ``t_x, t_y`` uniform in ``[-s, s]``; the method sets ``s = f (min(H, W) - c) / 2``,
a fraction ``f`` (0.9) of the margin on each side, its reading of the seed's "up to 0.9 x
(full - crop)" that keeps the moved crop inside the image.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Union

import torch


class Motion(NamedTuple):
    """A batch of rigid motions of the crop plane, float64.

    Attributes:
        theta: ``(N,)`` rotation angles in radians.
        shift: ``(N, 2)`` translations ``(t_x, t_y)`` in pixels (``x`` right, ``y`` down).
    """

    theta: torch.Tensor
    shift: torch.Tensor


def rotate(theta: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """``R(theta) xy`` for angles ``(N,)`` and points ``(N, ..., 2)`` (``x, y`` last)."""
    shape = (-1,) + (1,) * (xy.ndim - 2)
    cos, sin = theta.cos().view(shape), theta.sin().view(shape)
    x, y = xy[..., 0], xy[..., 1]
    return torch.stack([cos * x - sin * y, sin * x + cos * y], -1)


def apply(motion: Motion, xy: torch.Tensor) -> torch.Tensor:
    """``g(p) = R(theta) p + t`` for points ``(N, P, 2)`` (offsets from the crop's centre)."""
    return rotate(motion.theta, xy) + motion.shift[:, None, :]


def invert(motion: Motion) -> Motion:
    """The inverse motion ``(-theta, -R(-theta) t)``."""
    return Motion(-motion.theta, -rotate(-motion.theta, motion.shift))


def compose(a: Motion, b: Motion) -> Motion:
    """``a o b`` (``b`` first): ``(theta_a + theta_b, R(theta_a) t_b + t_a)``."""
    return Motion(a.theta + b.theta, rotate(a.theta, b.shift) + a.shift)


def select(mask: torch.Tensor, a: Motion, b: Motion) -> Motion:
    """Per sample, ``a`` where ``mask`` ``(N,)`` is true, else ``b``."""
    return Motion(torch.where(mask, a.theta, b.theta), torch.where(mask[:, None], a.shift, b.shift))


def draw(n: int, *, max_rotation: float, max_shift: float,
         generator: torch.Generator) -> Motion:
    """``n`` motions: ``theta`` uniform in ``[-max_rotation, max_rotation]`` (radians), ``t_x``
    and ``t_y`` uniform in ``[-max_shift, max_shift]`` (pixels), float64 on the CPU."""
    u = torch.rand(n, 3, generator=generator, dtype=torch.float64) * 2.0 - 1.0
    return Motion(u[:, 0] * max_rotation, u[:, 1:] * max_shift)


def crop_side(crop: Union[int, float], height: int, width: int) -> int:
    """The crop's side in pixels: ``crop`` itself (an ``int``) or ``round(crop * min(H, W))``
    (a fraction, a ``float``).

    Raises:
        ValueError: one line, when the crop does not fit the ``H x W`` input.
    """
    side = crop if isinstance(crop, int) else int(round(crop * min(height, width)))
    if not 1 <= side <= min(height, width):
        raise ValueError(f"method.crop={crop!r} gives a {side} px view that does not fit the "
                         f"{height}x{width} px input (at most {min(height, width)} px)")
    return side


def centre_crop(images: torch.Tensor, side: int) -> torch.Tensor:
    """View 2: the centre crop ``(N, C, side, side)`` of ``images`` ``(N, C, H, W)``."""
    h, w = images.shape[-2:]
    top, left = (h - side) // 2, (w - side) // 2
    return images[..., top:top + side, left:left + side]


def source_pixels(motion: Motion, *, side: int, size: tuple[int, int],
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns ``(N, side, side)`` (int64) of the image pixel each pixel of view 1
    shows: ``centre + g(p)`` rounded half up, clamped to the image."""
    h, w = size
    half = (side - 1) / 2  # the crop's centre, in the crop's pixel coordinates
    offsets = torch.arange(side, dtype=torch.float64, device=device) - half
    rows, cols = torch.meshgrid(offsets, offsets, indexing="ij")
    p = torch.stack([cols, rows], -1).view(1, side * side, 2)  # (1, P, 2) as (x, y)
    motion = Motion(motion.theta.to(device), motion.shift.to(device))
    src = apply(motion, p.expand(motion.theta.shape[0], -1, -1))  # (N, P, 2)
    centre_x, centre_y = (w - side) // 2 + half, (h - side) // 2 + half
    xs = torch.floor(src[..., 0] + centre_x + 0.5).long().clamp_(0, w - 1)
    ys = torch.floor(src[..., 1] + centre_y + 0.5).long().clamp_(0, h - 1)
    return ys.view(-1, side, side), xs.view(-1, side, side)


def render(images: torch.Tensor, motion: Motion, side: int) -> torch.Tensor:
    """View 1: ``(N, C, side, side)``, each pixel the image's pixel at ``centre + g(p)``
    (nearest neighbour), from ``images`` ``(N, C, H, W)`` and one motion per image."""
    n, c, h, w = images.shape
    # float64 coordinates where the device has them (the rounding must not depend on it)
    work = images.device if images.device.type in ("cpu", "cuda") else torch.device("cpu")
    ys, xs = source_pixels(motion, side=side, size=(h, w), device=work)
    index = (ys * w + xs).to(images.device).view(n, 1, side * side).expand(n, c, -1)
    return images.flatten(2).gather(2, index).view(n, c, side, side)


def normalise(motion: Motion, *, max_rotation: float, max_shift: float) -> torch.Tensor:
    """``(N, 3)`` float32 ``(theta / r, t_x / S, t_y / S)``, every entry in ``[-1, 1]`` for the
    drawn motions *and* their inverses: ``r = max_rotation``, ``S = max_shift (cos r + sin r)``
    (an inverse's translation ``-R(-theta) t`` reaches ``|t_x| cos r + |t_y| sin r`` on an axis);
    a zero range divides by 1 (its entries are zero)."""
    r = max_rotation if max_rotation > 0 else 1.0
    s = max_shift * (math.cos(max_rotation) + math.sin(max_rotation)) if max_shift > 0 else 1.0
    return torch.cat([motion.theta[:, None] / r, motion.shift / s], 1).float()
