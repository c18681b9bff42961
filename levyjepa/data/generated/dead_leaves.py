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

Example:
    >>> images, labels = render_shapes(1000, size=32, seed=0)
    >>> images.shape, images.dtype, labels[:3]
    (torch.Size([1000, 3, 32, 32]), torch.uint8, tensor([5, 7, 3]))
"""

from __future__ import annotations

import math

import numpy as np
import torch

from levyjepa.errors import ConfigError

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

# Leaf radii as a fraction of the image side (density ∝ r^-3 between the two).
_R_MIN = 0.05
_R_MAX = 0.6
# Foreground shape: circumradius R = scale * side / 2 with scale uniform in this range.
_SCALE_MIN = 0.38
_SCALE_MAX = 0.6
# Contrast of the background colours around mid grey (1 = the full RGB cube). A muted
# background keeps the saturated foreground the most salient object: with full contrast a tiny
# ViT stays at chance for several minutes of CPU training, with 0.5 it learns at once.
_BG_CONTRAST = 0.55
# Number of random candidate colours for the foreground.
_FG_CANDIDATES = 12
# Largest leaf gradient (colour change per image side) and shading amplitude (relative change
# of brightness per image side).
_LEAF_GRADIENT = 0.35
_SHADING = 0.3
# Supersampling factor of the foreground mask (per axis).
_SS = 2
# Layout of the per-image random vector drawn before the leaves (all uniform in [0, 1)).
_H_POS = 0  # 2 values: centre x, y
_H_SCALE = 2  # 1 value
_H_ANGLE = 3  # 1 value
_H_SHADE = 4  # 2 values: amplitude, direction
_H_BASE = 6  # 5 values: base colour (value, saturation, 3 hue)
_H_FG = 11  # 3 * _FG_CANDIDATES values
_HEAD = _H_FG + 3 * _FG_CANDIDATES
# Per leaf: centre x, y, radius, colour (value, saturation, 3 hue), gradient x, y.
_LEAF = 10
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


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_GOLDEN2 = np.uint64(0xD1B54A32D192ED03)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective, well-mixing hash of ``uint64`` arrays (wraps mod 2^64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _keys(seed: int, stream: int, items: np.ndarray) -> np.ndarray:
    """One 64-bit key per item of ``items`` (uint64) for random stream ``stream`` of ``seed``."""
    base = _mix(np.array([seed], dtype=np.uint64) ^ _mix(np.array([stream], dtype=np.uint64)))
    return _mix(base + items * _GOLDEN)


def _uniforms(keys: np.ndarray, first: int, width: int) -> np.ndarray:
    """Counter-based uniforms in [0, 1): entry ``(i, j)`` hashes ``keys[i]`` with ``first + j``.

    Entry ``(i, j)`` depends only on ``keys[i]`` and ``first + j``, so a wider draw extends a
    narrower one instead of changing it.
    """
    counters = np.arange(first, first + width, dtype=np.uint64)
    bits = _mix(keys[:, None] + counters[None, :] * _GOLDEN2)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _labels(first: int, count: int, seed: int, classes: int) -> np.ndarray:
    """Balanced labels: each aligned block of ``classes`` indices is a random permutation."""
    if count == 0:
        return np.empty(0, dtype=np.int64)
    index = np.arange(first, first + count, dtype=np.int64)
    block, offset = np.divmod(index, classes)
    blocks = np.arange(block[0], block[-1] + 1, dtype=np.uint64)
    # Sorting random keys gives a uniformly random permutation of the classes in each block.
    perms = np.argsort(_uniforms(_keys(seed, 1, blocks), 0, classes), axis=1, kind="stable")
    return perms[block - block[0], offset].astype(np.int64)


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


def _shape_inside(label: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
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


def _draw_params(
    first: int, count: int, seed: int, leaves: int, rotation: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image random parameters, a pure function of ``(seed, index)``.

    Returns:
        ``head`` ``(count, _HEAD)`` uniforms, ``trig`` ``(count, 4)`` holding cos and sin of the
        shape rotation and of the shading direction, and ``leaf`` ``(count, leaves, _LEAF)``
        uniforms. The head uses the first counters of each image's stream, so the foreground
        and base colour do not depend on ``leaves``.
    """
    keys = _keys(seed, 0, np.arange(first, first + count, dtype=np.uint64))
    head = _uniforms(keys, 0, _HEAD)
    leaf = _uniforms(keys, _HEAD, leaves * _LEAF).reshape(count, leaves, _LEAF)
    return head, _trig(head, rotation), leaf


def _instance_params(
    first: int, count: int, seed: int, instance: int, rotation: float
) -> tuple[np.ndarray, np.ndarray]:
    """``head`` and ``trig`` of the extra shape ``instance`` (>= 1) of every image.

    Each extra instance has its own random stream, so adding instances leaves the background,
    the first shape and the other instances unchanged.
    """
    keys = _keys(seed, 2 + instance, np.arange(first, first + count, dtype=np.uint64))
    head = _uniforms(keys, 0, _HEAD)
    return head, _trig(head, rotation)


def _cells(first: int, count: int, seed: int, grid: int) -> np.ndarray:
    """A random permutation of the ``grid * grid`` cells per image, ``(count, grid * grid)``.

    Shape ``j`` of an image goes in cell ``[:, j]``: the shapes never overlap, and when they
    are fewer than the cells the empty ones are anywhere.
    """
    keys = _keys(seed, 2, np.arange(first, first + count, dtype=np.uint64))
    return np.argsort(_uniforms(keys, 0, grid * grid), axis=1, kind="stable")


def _trig(head: np.ndarray, rotation: float) -> np.ndarray:
    """cos and sin of the shape rotation and of the shading direction, ``(count, 4)``."""
    count = head.shape[0]
    # Scalar libm calls per image: the same bits whatever batch an image is rendered in (a
    # vectorised sin/cos may round differently in its SIMD body and its scalar tail).
    two_pi = 2.0 * math.pi
    # ``rotation`` scales the shape's angle range: 1 any angle, 0 upright.
    angles = (two_pi * head[:, [_H_ANGLE, _H_SHADE + 1]] * np.array([rotation, 1.0])).tolist()
    trig = np.array(
        [(math.cos(a), math.sin(a), math.cos(b), math.sin(b)) for a, b in angles],
        dtype=np.float64,
    ).reshape(count, 4)
    return trig


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
    scale = _SCALE_MIN + (_SCALE_MAX - _SCALE_MIN) * head[:, _H_SCALE]
    radius = scale * side / 2.0  # circumradius in pixels
    # Centre uniform in [R, L - R] per axis within the cell, so the circumcircle is inside it.
    corner = np.zeros((n, 2))
    if cell is not None:
        corner = np.stack([cell % grid, cell // grid], axis=1) * side
    offset = head[:, _H_POS : _H_POS + 2]
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
        inside = _shape_inside(k, u, v).view(torch.uint8)
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
        img = _paint_shape(img, head_j, trig_j, labels, size, grid, cell_j)
    return shade_and_quantise(img, head, trig, size)


def render_background(head: np.ndarray, leaf: np.ndarray, size: int) -> torch.Tensor:
    """The dead leaves background of each image, before shading.

    Args:
        head: Per-image uniforms ``(n, _HEAD)`` from :func:`_draw_params` (the base colour).
        leaf: Per-leaf uniforms ``(n, leaves, _LEAF)`` from :func:`_draw_params`.
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
    base = _colours(head[:, _H_BASE], head[:, _H_BASE + 1], head[:, _H_BASE + 2 : _H_BASE + 5])
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
        head: Per-image uniforms ``(n, _HEAD)`` (the shading amplitude).
        trig: ``(n, 4)`` from :func:`_draw_params` (columns 2 and 3: the shading direction).
        size: Side of the images in pixels.

    Returns:
        uint8 tensor ``(n, 3, size, size)`` (a channels-first view).
    """
    n, f32 = head.shape[0], torch.float32
    pix = torch.arange(size, dtype=f32) + 0.5
    xs = pix.repeat(size)  # x of each flattened pixel
    ys = pix.repeat_interleave(size)
    # Mild multiplicative shading ramp along a random direction through the image centre.
    amp = _SHADING * head[:, _H_SHADE] / size
    sx = torch.from_numpy(amp * trig[:, 2]).to(f32)[:, None]
    sy = torch.from_numpy(amp * trig[:, 3]).to(f32)[:, None]
    half = size / 2.0
    shade = (xs - half) * sx + (ys - half) * sy + 1.0  # (n, size * size)
    img = img.mul_(shade).clamp_(0.0, 1.0).mul_(255.0).add_(0.5)
    # Truncation of values in [0.5, 255.5] rounds to nearest; via int16, much faster than a
    # direct float -> uint8 conversion.
    out = img.to(torch.int16).to(torch.uint8)
    return out.view(3, n, size, size).permute(1, 0, 2, 3)


def _paint_shape(
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
    cand = torch.from_numpy(head[:, _H_FG:].reshape(n, _FG_CANDIDATES, 3))
    # Push candidates towards the faces of the RGB cube: saturated or very dark/bright colours.
    cand = ((cand - 0.5) * 2.0 + 0.5).clamp_(0.02, 0.98)
    diff = cand - mean[:, None, :]
    dist = diff[..., 0] ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2  # explicit, no reduction
    best = dist.argmax(dim=1)
    fg = cand[torch.arange(n), best].T.to(f32)[:, :, None]  # (3, n, 1)

    # Composite with the anti-aliased coverage as opacity.
    alpha = cover.to(f32).mul_(1.0 / _SS**2)
    return (fg - img).mul_(alpha).add_(img)


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
        lab = _labels(start + lo, hi - lo, seed, classes)
        head, trig, leaf = _draw_params(start + lo, hi - lo, seed, leaves, rotation)
        cells = _cells(start + lo, hi - lo, seed, grid) if instances > 1 else None
        shapes = [(head, trig, None if cells is None else cells[:, 0])]
        for j in range(1, instances):
            shapes.append((*_instance_params(start + lo, hi - lo, seed, j, rotation), cells[:, j]))
        # copies channels-first
        images[lo:hi] = _render_chunk(head, trig, leaf, lab, size, shapes, grid)
        labels[lo:hi] = lab
    return images, torch.from_numpy(labels)
