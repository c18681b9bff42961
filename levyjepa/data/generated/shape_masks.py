"""The foreground shapes of the dead leaves images: class names, masks, coverage and painting.

:func:`shape_inside` tells which points lie inside a shape in its canonical pose (also used by
:mod:`levyjepa.data.generated.scenes`); :func:`paint_shape` draws one anti-aliased shape per
image, posed and sized from the image's random parameters
(:mod:`levyjepa.data.generated.random_streams`), in the colour of its candidates that stands out
most from the image along its outline.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from levyjepa.data.generated.random_streams import FG_CANDIDATES, H_FG, H_POS, H_SCALE

SHAPE_CLASSES: tuple[str, ...] = (
    "disk",
    "square",
    "triangle",
    "ring",
    "plus",
    "diamond",
    "ellipse",
    "star",
    "hexagon",
    "half_disk",
)
"""Names of the foreground shapes; label ``k`` is ``SHAPE_CLASSES[k]``."""

# Foreground shape: circumradius R = scale * side / 2 with scale uniform in this range.
_SCALE_MIN = 0.38
_SCALE_MAX = 0.6
# Supersampling factor of the foreground mask (per axis).
_SS = 2


def shape_inside(label: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Whether points ``(u, v)`` lie inside shape ``label`` in its canonical pose.

    Canonical coordinates are centred on the shape and scaled by its circumradius ``R``: every
    shape fits (nearly) in the unit disk. ``v`` points "up" in the shape's own frame. Only
    comparisons, additions and multiplications are used, so the result is exact per point.

    Args:
        label: Index into :data:`SHAPE_CLASSES`.
        u: First canonical coordinate, any shape.
        v: Second canonical coordinate, same shape as ``u``.

    Returns:
        Boolean tensor of the shape of ``u``.
    """
    name = SHAPE_CLASSES[label]
    if name == "disk":
        return u * u + v * v < 0.81  # radius 0.9
    if name == "square":
        return torch.maximum(u.abs(), v.abs()) < 0.7  # half side 0.7, corners at radius 0.99
    if name == "triangle":
        # Equilateral, vertex up, circumradius 1: inside the three edges, whose outward normals
        # point at -90, 30 and 150 degrees, each at distance (apothem) 1/2 from the centre.
        c = math.sqrt(3.0) / 2.0
        return (v > -0.5) & (c * u + 0.5 * v < 0.5) & (-c * u + 0.5 * v < 0.5)
    if name == "ring":
        r2 = u * u + v * v
        return (r2 < 1.0) & (r2 > 0.3025)  # annulus with radii 0.55 and 1
    if name == "plus":
        au, av = u.abs(), v.abs()
        arm = 0.3  # half width of each bar; half length 0.95
        return ((au < arm) & (av < 0.95)) | ((av < arm) & (au < 0.95))
    if name == "diamond":
        # A rhombus with half diagonals 1 and 0.6 (a square diamond would be a rotated square).
        return u.abs() + v.abs() / 0.6 < 1.0
    if name == "ellipse":
        return u * u + (v * v) / 0.3025 < 1.0  # semi axes 1 and 0.55
    if name == "star":
        # Regular pentagram with tips on the unit circle. Its five long edges are the chords
        # joining every second tip; each chord lies at distance cos(72 deg) from the centre with
        # its normal pointing at a tip. The pentagram is the set of points outside at most one
        # chord: the inner pentagon is inside all five, each spike crosses exactly one chord,
        # and every point outside the star is beyond two.
        d = math.cos(math.radians(72.0))
        outside = torch.zeros(u.shape, dtype=torch.int8)
        for k in range(5):
            a = math.radians(90.0 + 72.0 * k)
            outside += (math.cos(a) * u + math.sin(a) * v > d).to(torch.int8)
        return outside <= 1
    if name == "hexagon":
        # Regular hexagon with circumradius 0.95: |n_k . p| below the apothem for the three edge
        # normals at 0, 60 and 120 degrees (vertices at 30, 90, ... degrees, one pointing up).
        h = 0.95 * math.sqrt(3.0) / 2.0
        c = 0.5 * math.sqrt(3.0)
        return (u.abs() < h) & ((0.5 * u + c * v).abs() < h) & ((0.5 * u - c * v).abs() < h)
    if name == "half_disk":
        # Half of a disk of radius 0.92, flat side down, shifted so that its centroid (at
        # 4 r / (3 pi) above the flat side) sits at the origin; its corners reach radius 1.
        w = v + 0.92 * 4.0 / (3.0 * math.pi)
        return (u * u + w * w < 0.8464) & (w > 0.0)
    raise AssertionError(name)  # pragma: no cover


def _foreground_cover(
    head: np.ndarray,
    trig: np.ndarray,
    labels: np.ndarray,
    size: int,
    grid: int = 1,
    cell: np.ndarray | None = None,
) -> torch.Tensor:
    """Anti-aliased foreground masks as coverage counts ``0.._SS**2``, uint8 ``(n, size, size)``.

    The image is divided into ``grid x grid`` square cells of side ``L = size / grid`` and each
    shape is drawn in cell ``cell[b]`` (row-major; cell 0 when ``cell`` is None). It lies in its
    circumcircle of radius ``R = scale * L / 2``, centred at least ``R`` from every border of its
    cell. Only a square window of side ``ceil(2 R_max) + 1`` pixels around it is evaluated, on
    an ``_SS x _SS`` sub-pixel grid, and pasted into the full-size mask.
    """
    n = head.shape[0]
    f32 = torch.float32
    side = size / grid
    scale = _SCALE_MIN + (_SCALE_MAX - _SCALE_MIN) * head[:, H_SCALE]
    radius = scale * side / 2.0  # circumradius in pixels
    # Centre uniform in [R, L - R] per axis within the cell, so the circumcircle is inside it.
    corner = np.zeros((n, 2))
    if cell is not None:
        corner = np.stack([cell % grid, cell // grid], axis=1) * side
    offset = head[:, H_POS : H_POS + 2]
    centre = corner + radius[:, None] + (side - 2.0 * radius[:, None]) * offset
    win = min(size, math.ceil(_SCALE_MAX * side) + 1)
    # Window origin: floor(centre - R), moved inwards where the window would cross the border
    # (it still contains the circumcircle, which is inside the image).
    origin = np.clip(np.floor(centre - radius[:, None]), 0, size - win).astype(np.int64)
    # Canonical coordinates of the sub-pixel centres: (u, v) = rotation(-theta) (p - c) / R,
    # with v pointing up (image rows point down, hence the sign flip on dy). Per-axis offsets
    # dx (over columns) and dy (over rows) combine by broadcasting.
    sub = (torch.arange(win * _SS, dtype=f32) + 0.5) / _SS
    shift = torch.from_numpy(origin - centre).to(f32)  # window origin relative to the centre
    inv_r = torch.from_numpy(1.0 / radius).to(f32)[:, None]
    dx = (sub[None, :] + shift[:, 0:1]) * inv_r  # (n, cols)
    dy = -(sub[None, :] + shift[:, 1:2]) * inv_r  # (n, rows)
    cos_t = torch.from_numpy(trig[:, 0]).to(f32)[:, None]
    sin_t = torch.from_numpy(trig[:, 1]).to(f32)[:, None]
    ucol, urow = cos_t * dx, sin_t * dy  # u = cos dx + sin dy
    vrow, vcol = cos_t * dy, sin_t * dx  # v = cos dy - sin dx
    cover_win = torch.empty((n, win, win), dtype=torch.uint8)
    for k in np.unique(labels).tolist():
        sel = torch.from_numpy(np.flatnonzero(labels == k))
        u = ucol[sel][:, None, :] + urow[sel][:, :, None]
        v = vrow[sel][:, :, None] - vcol[sel][:, None, :]
        inside = shape_inside(k, u, v).view(torch.uint8)
        # Coverage count of each pixel: the sum of its _SS x _SS sub-pixels.
        inside = inside.reshape(len(sel), win, _SS, win, _SS)
        count = inside[:, :, 0, :, 0].clone()
        for sy in range(_SS):
            for sx in range(_SS):
                if sy or sx:
                    count += inside[:, :, sy, :, sx]
        cover_win[sel] = count
    # Paste the windows: flat pixel index (oy + row) * size + (ox + col).
    steps = torch.arange(win)
    org = torch.from_numpy(origin)
    flat = ((org[:, 1, None] + steps) * size)[:, :, None] + (org[:, 0, None] + steps)[:, None, :]
    cover = torch.zeros((n, size * size), dtype=torch.uint8)
    cover.scatter_(1, flat.reshape(n, win * win), cover_win.reshape(n, win * win))
    return cover.reshape(n, size, size)


def paint_shape(
    img: torch.Tensor,
    head: np.ndarray,
    trig: np.ndarray,
    labels: np.ndarray,
    size: int,
    grid: int,
    cell: np.ndarray | None,
) -> torch.Tensor:
    """Paint one foreground shape per image over ``img`` (float ``(3, n, size * size)``).

    The shape of image ``b`` goes in cell ``cell[b]`` of a ``grid x grid`` layout (see
    :func:`_foreground_cover`).
    """
    n = head.shape[0]
    f32 = torch.float32
    cover = _foreground_cover(head, trig, labels, size, grid, cell).reshape(1, n, size * size)

    # The colour: of the candidates, the one farthest from the image around the shape. The edge
    # of the shape is what must stand out, so the reference colour is the mean of the image over
    # a thin band along the outline: pixels within `reach` of the shape that are not fully
    # covered by it (a max-pool dilation of the coverage).
    reach = max(1, size // 16)
    near = cover.view(n, 1, size, size).to(f32)
    near = torch.nn.functional.max_pool2d(near, (1, 2 * reach + 1), stride=1, padding=(0, reach))
    near = torch.nn.functional.max_pool2d(near, (2 * reach + 1, 1), stride=1, padding=(reach, 0))
    band = ((near > 0) & (cover.view(n, 1, size, size) < _SS**2)).view(1, n, size * size)
    # Integer arithmetic (quantised image, 0/1 weights) makes the mean exact, so it does not
    # depend on how the reduction is split across threads or batch sizes.
    img_q = img.mul(255.0).add_(0.5).to(torch.int16).mul_(band)
    total = img_q.sum(dim=2, dtype=torch.int64).T.double()  # (n, 3)
    weight = band.sum(dim=2, dtype=torch.int64).T.double().clamp_(min=1.0)  # (n, 1)
    mean = total / (255.0 * weight)
    cand = torch.from_numpy(head[:, H_FG:].reshape(n, FG_CANDIDATES, 3))
    # Push candidates towards the faces of the RGB cube: saturated or very dark/bright colours.
    cand = ((cand - 0.5) * 2.0 + 0.5).clamp_(0.02, 0.98)
    diff = cand - mean[:, None, :]
    dist = diff[..., 0] ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2  # explicit, no reduction
    best = dist.argmax(dim=1)
    fg = cand[torch.arange(n), best].T.to(f32)[:, :, None]  # (3, n, 1)

    # Composite with the anti-aliased coverage as opacity.
    alpha = cover.to(f32).mul_(1.0 / _SS**2)
    return (fg - img).mul_(alpha).add_(img)
