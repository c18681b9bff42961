"""Generated clips of several moving shapes with exact instance maps and point tracks.

A clip shows ``N`` shapes of DIFFERENT classes (``MOVING_SHAPES``) over the background of
:func:`~levyjepa.data.generated.moving_shapes.render_video` (gratings and soft disks through a
slowly panning camera, drawn by ``draw_background`` and evaluated at the pixel centres). Each shape
follows its own Lévy-like path (drifting, wandering velocity, rare jumps, reflected off the walls
of a box), turns at a steady rate and keeps one flat colour. About half of the shapes roam a box
larger than the frame (centre in ``[-r, 1 + r]``, ``r`` the circumradius): they can leave the
frame and come back. Depth order is fixed: object ``j`` is painted over the objects ``< j``.

**Exactness.** Every shape's mask is a hard mask evaluated at the pixel centres (pixel
``(row i, col j)`` has its centre at ``(x, y) = (j + 0.5, i + 0.5)``, the ``align_corners=False``
convention of ``torch.nn.functional.grid_sample``); the same mask paints the frame and the
instance map, in one flat uint8 colour per object, so ``frames[t][instances[t] == j]`` equals
colour ``j`` exactly. The colours are distinct, and a background pixel equal to one of them has
its red level moved by a few steps, so no other pixel has that colour. Every object shows at
least ``min(8, half its area)`` pixels in frame 0 (its start is redrawn until it does), because
propagation protocols start from the frame-0 masks.

**Tracks.** ``points`` query points are drawn at frame 0 among the visible pixel centres of the
objects (``points // N`` per object, the remainder to random objects) and move rigidly with their
object (its translation and rotation). A point is visible in frame ``t`` iff it lies in the frame,
the pixel containing it (``floor(x), floor(y)``) belongs to its object, and the object's shape
contains the point itself. Visibility is computed from the stored float32 positions; every point
is visible in frame 0.

Everything is a pure function of ``(seed, index)`` and the arguments, drawn from
``np.random.default_rng([seed, index, _STREAM])``; the layout (classes, sizes, colours, frame-0
positions) is drawn first and does not depend on ``frames``, ``jump_prob`` or ``speed``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from levyjepa.data.generated.moving_shapes import (
    MOVING_SHAPES,
    _shape_mask,
    draw_background,
    paint_background,
)

_STREAM = 0x5CC11B  # random stream of scene clips (render_video uses the bare (seed, index))
_RADIUS = (0.13, 0.22)  # circumradius range, in frame sides
_ROAM_P = 0.5  # probability that an object may leave the frame
_MIN_VISIBLE = 8  # visible pixels each object needs in frame 0 (at most half its area)
_ATTEMPTS = 64  # start positions tried per object (the second half inside the frame)
_NUDGES = tuple(d * s for d in range(1, len(MOVING_SHAPES) + 2) for s in (1, -1))


class SceneClip(NamedTuple):
    """One clip of :func:`render_scene_clip`; ``N`` objects, ``P`` tracked points.

    Attributes:
        frames: uint8 ``(T, H, W, 3)``.
        instances: int64 ``(T, H, W)``: 0 background, ``j`` where object ``j`` (1..N) is seen.
        classes: int64 ``(N,)``: shape class of object ``j`` at ``j - 1``, distinct.
        tracks: float32 ``(P, T, 2)``: ``(x, y)`` in pixels, pixel centres at ``+0.5``.
        visible: bool ``(P, T)``.
        point_object: int64 ``(P,)``: the object id (1..N) of each track.
    """

    frames: np.ndarray
    instances: np.ndarray
    classes: np.ndarray
    tracks: np.ndarray
    visible: np.ndarray
    point_object: np.ndarray


class SceneObjects(NamedTuple):
    """The objects of a clip (see :func:`scene_clip_objects`), in pixels.

    Attributes:
        classes: int64 ``(N,)``.
        radius: float64 ``(N,)``: circumradius.
        centres: float64 ``(N, T, 2)``: ``(x, y)`` of each centre.
        angles: float64 ``(N, T)``: rotation in radians.
        colours: uint8 ``(N, 3)``.
    """

    classes: np.ndarray
    radius: np.ndarray
    centres: np.ndarray
    angles: np.ndarray
    colours: np.ndarray


def check_scene_clip_args(*, seed: object, index: object, size: object, frames: object,
                          objects: object, classes: object, jump_prob: object, speed: object,
                          points: object = None) -> tuple[int, int]:
    """Refuse an invalid argument of :func:`render_scene_clip` (``points=None``: unchecked).

    Raises:
        ValueError: naming the argument and its valid range.
    """
    for name, value, low in (("seed", seed, 0), ("index", index, 0), ("size", size, 16),
                             ("frames", frames, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if (isinstance(classes, bool) or not isinstance(classes, (int, np.integer))
            or not 2 <= classes <= len(MOVING_SHAPES)):
        raise ValueError(f"classes must be an integer in 2..{len(MOVING_SHAPES)}, got {classes!r}")
    pair = isinstance(objects, (tuple, list)) and len(objects) == 2 and all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in objects)
    if not pair or not 1 <= objects[0] <= objects[1] <= classes:
        raise ValueError(f"objects must be a pair (min, max) of integers with 1 <= min <= max "
                         f"<= classes ({classes}), got {objects!r}")
    lo, hi = int(objects[0]), int(objects[1])
    if not isinstance(jump_prob, (int, float)) or not 0.0 <= jump_prob <= 1.0:
        raise ValueError(f"jump_prob must be in [0, 1], got {jump_prob!r}")
    if not isinstance(speed, (int, float)) or not 0.0 <= speed < math.inf:
        raise ValueError(f"speed must be a finite number >= 0, got {speed!r}")
    if points is not None and (isinstance(points, bool) or
                               not isinstance(points, (int, np.integer)) or points < hi):
        raise ValueError(f"points must be an integer >= objects[1] ({hi}), got {points!r}")
    return lo, hi


def _uv(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray,
        cos: np.ndarray, sin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shape coordinates (unit circumradius) of the points ``(x, y)``, all broadcast."""
    dx, dy = (x - cx) / radius, (y - cy) / radius
    return cos * dx + sin * dy, cos * dy - sin * dx


def _trig(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin with scalar libm calls: the same bits whatever the array's shape."""
    flat = angles.ravel().tolist()
    return tuple(np.array([f(a) for a in flat]).reshape(angles.shape) for f in (math.cos, math.sin))


def _mask(label: int, centres: np.ndarray, radius: float, angles: np.ndarray,
          size: int) -> np.ndarray:
    """Hard mask at the pixel centres of one object, bool ``(T, size, size)``.

    Args:
        label: Shape class.
        centres: ``(T, 2)`` centre ``(x, y)`` in pixels.
        radius: Circumradius in pixels.
        angles: ``(T,)`` rotation.
        size: Frame side.
    """
    pix = np.arange(size) + 0.5
    cos, sin = _trig(angles)
    u, v = _uv(pix[None, None, :], pix[None, :, None], centres[:, 0, None, None],
               centres[:, 1, None, None], radius, cos[:, None, None], sin[:, None, None])
    return _shape_mask(label, u, v)


def object_masks(objects: SceneObjects, size: int) -> np.ndarray:
    """Full (unoccluded) masks of the objects, bool ``(N, T, size, size)``."""
    return np.stack([_mask(int(k), objects.centres[j], float(objects.radius[j]),
                           objects.angles[j], size) for j, k in enumerate(objects.classes)])


def _colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct saturated uint8 colours ``(n, 3)``, of well spread hues."""
    hue = rng.uniform(0, 2 * math.pi) + 2 * math.pi * np.arange(n) / n
    hue = hue + rng.uniform(-0.3, 0.3, size=n)
    rgb = 0.5 + 0.5 * np.cos(hue[:, None] + np.array([0.0, 2.0, 4.0]) * math.pi / 3)
    levels = np.floor(rgb * 255.0 + 0.5).astype(np.int64)
    for j in range(1, n):  # distinct (rarely needed)
        while (levels[j] == levels[:j]).all(axis=1).any():
            levels[j, 0] = (levels[j, 0] + 1) % 256
    return levels.astype(np.uint8)


def _layout(rng: np.random.Generator, size: int, classes: int, lo: int, hi: int) -> dict:
    """Draw the frame-independent layout; the starts are drawn from the top object down."""
    n = int(rng.integers(lo, hi + 1))
    out = dict(classes=rng.permutation(classes)[:n].astype(np.int64),
               radius=rng.uniform(*_RADIUS, size=n), angle=rng.uniform(0, 2 * math.pi, size=n),
               spin=rng.uniform(-0.1, 0.1, size=n), roam=rng.random(n) < _ROAM_P,
               colours=_colours(rng, n))
    start, inst0 = np.empty((n, 2)), np.zeros((size, size), dtype=np.int64)
    covered = np.zeros((size, size), dtype=bool)  # full masks of the objects above
    for j in reversed(range(n)):
        label, r_px, angle = int(out["classes"][j]), out["radius"][j] * size, out["angle"][j:j + 1]
        area = _mask(label, np.full((1, 2), size / 2), r_px, angle, size).sum()
        need, best = min(_MIN_VISIBLE, int(area) // 2), None
        for attempt in range(_ATTEMPTS):
            margin = out["radius"][j] * (1 if attempt >= _ATTEMPTS // 2 or
                                         not out["roam"][j] else -1)
            pos = rng.uniform(margin, 1.0 - margin, size=2)
            mask = _mask(label, pos[None] * size, r_px, angle, size)[0]
            seen = mask & ~covered
            if best is None or seen.sum() > best[0].sum():
                best = (seen, mask, pos)
            if best[0].sum() >= need:
                break
        seen, mask, start[j] = best
        inst0[seen] = j + 1
        covered |= mask
    out.update(start=start, inst0=inst0)
    return out


def _paths(rng: np.random.Generator, layout: dict, frames: int, speed: float,
           jump_prob: float) -> np.ndarray:
    """Centres ``(N, frames, 2)`` in frame sides: drift, Brownian velocity, rare jumps.

    The free path is folded into each object's box (reflection at the walls, the motion of
    :func:`~levyjepa.data.generated.moving_shapes.levy_path`); frame 0 is the start itself.
    """
    start, n, steps = layout["start"], len(layout["start"]), frames - 1
    low = np.where(layout["roam"], -layout["radius"], layout["radius"])[:, None, None]
    span = 1.0 - 2.0 * low
    heading = rng.uniform(0, 2 * math.pi, size=n)
    vel0 = speed * rng.uniform(0.5, 1.5, size=n)[:, None] * np.stack(
        [np.cos(heading), np.sin(heading)], axis=1)
    vel = vel0[:, None] + np.cumsum(rng.normal(0.0, 0.25 * speed, size=(n, steps, 2)), axis=1)
    jump = rng.random((n, steps)) < jump_prob
    leap = rng.uniform(0.2, 0.4, size=(n, steps)) * span[:, :, 0] * jump
    turn = rng.uniform(0, 2 * math.pi, size=(n, steps))
    step = vel + leap[..., None] * np.stack([np.cos(turn), np.sin(turn)], axis=-1)
    free = start[:, None] + np.cumsum(step, axis=1)
    folded = low + span - np.abs(np.mod(free - low, 2.0 * span) - span)
    return np.concatenate([start[:, None], folded], axis=1)


def _avoid_colours(image: np.ndarray, colours: np.ndarray) -> None:
    """Move the red level of the pixels of ``image`` equal to a colour (in place)."""
    red = image[..., 0].astype(np.int16)
    for d in _NUDGES:
        clash = (image[..., None, :] == colours).all(axis=-1).any(axis=-1)
        if not clash.any():
            return
        moved = red + d
        ok = clash & (moved >= 0) & (moved <= 255)
        image[..., 0][ok] = moved[ok]


def _draw(seed: int, index: int, size: int, frames: int, objects: tuple, classes: int,
          jump_prob: float, speed: float, points: int) -> tuple[np.random.Generator, SceneObjects]:
    """Validate, then draw the layout and the motion of the objects."""
    lo, hi = check_scene_clip_args(seed=seed, index=index, size=size, frames=frames,
                                   objects=objects, classes=classes, jump_prob=jump_prob,
                                   speed=speed, points=points)
    rng = np.random.default_rng([int(seed), int(index), _STREAM])
    layout = _layout(rng, int(size), int(classes), lo, hi)
    centres = _paths(rng, layout, int(frames), float(speed), float(jump_prob)) * size
    angles = layout["angle"][:, None] + layout["spin"][:, None] * np.arange(frames)
    return rng, SceneObjects(layout["classes"], layout["radius"] * size, centres, angles,
                             layout["colours"])


def scene_clip_objects(seed: int, index: int, *, size: int = 32, frames: int = 16,
                       objects: tuple[int, int] = (2, 4), classes: int = 6, jump_prob: float = 0.1,
                       speed: float = 0.03, points: int = 8) -> SceneObjects:
    """The objects of the clip :func:`render_scene_clip` renders with the same arguments."""
    return _draw(seed, index, size, frames, objects, classes, jump_prob, speed, points)[1]


def clip_label(seed: int, index: int, *, size: int = 32, objects: tuple[int, int] = (2, 4),
               classes: int = 6) -> int:
    """Class of the largest object of frame 0 (most visible pixels), without rendering."""
    lo, hi = check_scene_clip_args(seed=seed, index=index, size=size, frames=1, objects=objects,
                                   classes=classes, jump_prob=0.0, speed=0.0)
    rng = np.random.default_rng([int(seed), int(index), _STREAM])
    layout = _layout(rng, int(size), int(classes), lo, hi)
    area = np.bincount(layout["inst0"].ravel(), minlength=len(layout["classes"]) + 1)[1:]
    return int(layout["classes"][int(np.argmax(area))])


def _tracks(rng: np.random.Generator, obj: SceneObjects, instances: np.ndarray,
            points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tracks float32 ``(P, T, 2)``, visibility ``(P, T)`` and object ids ``(P,)``."""
    n, size = len(obj.classes), instances.shape[-1]
    counts = np.full(n, points // n)
    counts[rng.permutation(n)[:points % n]] += 1
    owner = np.repeat(np.arange(n), counts)
    picks = [rng.choice(np.flatnonzero(instances[0] == j + 1), size=int(c),
                        replace=bool(c > (instances[0] == j + 1).sum()))
             for j, c in enumerate(counts)]
    rows, cols = np.divmod(np.concatenate(picks), size)
    qx, qy = cols + 0.5, rows + 0.5
    cos, sin = _trig(obj.angles[owner])  # (P, T)
    cx, cy = obj.centres[owner, :, 0], obj.centres[owner, :, 1]
    radius = obj.radius[owner][:, None]
    u, v = _uv(qx, qy, cx[:, 0], cy[:, 0], radius[:, 0], cos[:, 0], sin[:, 0])
    x = cx + radius * (cos * u[:, None] - sin * v[:, None])
    y = cy + radius * (sin * u[:, None] + cos * v[:, None])
    tracks = np.stack([x, y], axis=-1).astype(np.float32)
    tracks[:, 0, 0], tracks[:, 0, 1] = qx, qy
    x, y = tracks[..., 0].astype(np.float64), tracks[..., 1].astype(np.float64)
    inside_frame = (x >= 0) & (x < size) & (y >= 0) & (y < size)
    ix = np.clip(np.floor(x), 0, size - 1).astype(np.int64)
    iy = np.clip(np.floor(y), 0, size - 1).astype(np.int64)
    seen = instances[np.arange(x.shape[1])[None], iy, ix] == owner[:, None] + 1
    su, sv = _uv(x, y, cx, cy, radius, cos, sin)
    inside = np.zeros_like(seen)
    for j, label in enumerate(obj.classes.tolist()):
        mine = owner == j
        inside[mine] = _shape_mask(label, su[mine], sv[mine])
    return tracks, inside_frame & seen & inside, (owner + 1).astype(np.int64)


def render_scene_clip(
    seed: int,
    index: int,
    *,
    size: int = 32,
    frames: int = 16,
    objects: tuple[int, int] = (2, 4),
    classes: int = 6,
    jump_prob: float = 0.1,
    speed: float = 0.03,
    points: int = 8,
) -> SceneClip:
    """Render clip ``index`` of the data set ``seed``, with its instance maps and tracks.

    Args:
        seed: Seed of the data set (>= 0).
        index: Index of the clip (>= 0).
        size: Side of the square frames in pixels (>= 16).
        frames: Number of frames ``T`` (>= 1).
        objects: ``(min, max)`` number of objects ``N``, uniform in between, with
            ``1 <= min <= max <= classes``.
        classes: Shape classes in use (2 to 6); the objects' classes are distinct.
        jump_prob: Probability of a jump of an object between two frames, in ``[0, 1]``.
        speed: Typical drift of an object per frame, in frame sides (>= 0).
        points: Number of tracked points ``P`` (>= ``objects[1]``).

    Returns:
        A :class:`SceneClip` ``(frames, instances, classes, tracks, visible, point_object)``.

    Raises:
        ValueError: naming the invalid argument and its valid range.
    """
    rng, obj = _draw(seed, index, size, frames, objects, classes, jump_prob, speed,
                             points)
    image = paint_background(draw_background(rng, int(frames)), int(size))
    _avoid_colours(image, obj.colours)
    instances = np.zeros(image.shape[:3], dtype=np.int64)
    for j, mask in enumerate(object_masks(obj, int(size))):
        instances[mask] = j + 1  # the same mask paints the map and the pixels
        image[mask] = obj.colours[j]
    tracks, visible, point_object = _tracks(rng, obj, instances, int(points))
    return SceneClip(image, instances, obj.classes.copy(), tracks, visible, point_object)
