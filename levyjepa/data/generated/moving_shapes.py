"""Procedural labelled videos: a shape moving over a textured, slowly panning background.

The label is the shape's class (:data:`MOVING_SHAPES`). The shape's path is Lévy-like, the
motion the 2D + time Lévy prior describes (docs/method.md, Lévy prior in 2D + time): a smooth drift
whose velocity wanders
a little from frame to frame (Brownian velocity), punctuated by rare jumps, where the shape
leaps a random distance in a random direction between two frames (a compound Poisson process:
a jump happens at each frame with probability ``jump_prob``). It bounces off the frame's edges
and turns at a steady random rate. The background is a sum of a few coloured sinusoidal gratings
and soft-edged disks (a smooth texture with a few edges), muted around mid grey, seen through a
camera that pans slowly along its own smooth path. The shape is drawn in a saturated colour,
anti-aliased by 2x2 supersampling.

Everything is a pure function of ``(seed, index)`` and the sizes: a NumPy generator is seeded by
``(seed, index)``, so a video is the same in every process, worker and run.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

MOVING_SHAPES: tuple[str, ...] = ("disk", "square", "triangle", "ring", "plus", "diamond")
"""Shape classes; label ``k`` is ``MOVING_SHAPES[k]``."""

_GRATINGS = 5  # sinusoidal components of the background
_DISKS = 6  # soft disks of the background
_SUPERSAMPLE = 2


class Background(NamedTuple):
    """Random parameters of a background (see :func:`draw_background`).

    Attributes:
        pan: Camera offset per frame ``(frames, 2)``, in frame sides.
        gratings: ``(frequency, orientation, phase, colour)`` per grating; the colour is
            float32 ``(3,)``.
        disks: ``(centre, radius, colour)`` per soft disk, in frame sides; the centre is
            ``(2,)``, the colour float32 ``(3,)``.
    """

    pan: np.ndarray
    gratings: list[tuple[float, float, float, np.ndarray]]
    disks: list[tuple[np.ndarray, float, np.ndarray]]


def draw_background(rng: np.random.Generator, frames: int) -> Background:
    """Draw the camera path and the texture of a background (the draws of render_video).

    Args:
        rng: Source of randomness.
        frames: Number of frames.
    """
    # Camera path (background offset, in frame sides): slow and smooth.
    pan_vel = rng.normal(0.0, 0.01, size=2)
    pan = np.cumsum(pan_vel + rng.normal(0.0, 0.002, size=(frames, 2)), axis=0)
    gratings = [(rng.uniform(1.0, 4.0), rng.uniform(0, math.pi), rng.uniform(0, 2 * math.pi),
                 rng.normal(0.0, 0.08, size=3).astype(np.float32)) for _ in range(_GRATINGS)]
    disks = [(rng.uniform(-0.2, 1.2, size=2), rng.uniform(0.08, 0.3),
              rng.uniform(-0.2, 0.2, size=3).astype(np.float32)) for _ in range(_DISKS)]
    return Background(pan, gratings, disks)


def paint_background(background: Background, size: int) -> np.ndarray:
    """A background evaluated at the pixel centres (no supersampling), uint8 ``(T, size, size, 3)``.

    The texture of :func:`render_video` in a few matrix products: the gratings are separable
    (``sin(a + b) = sin a cos b + cos a sin b``) and the soft disks ramp over one pixel.

    Args:
        background: Parameters from :func:`draw_background` (``T`` frames).
        size: Side of the frames in pixels.
    """
    frames = len(background.pan)
    grid = (np.arange(size) + 0.5) / size
    px, py = background.pan[:, 0, None], background.pan[:, 1, None]  # (T, 1)
    rows, cols = [], []  # (H, 2G) factors of the rows; (T, 2G, W, 3) factors of the columns
    for freq, theta, phase, colour in background.gratings:
        k = 2 * math.pi * freq
        a = k * (math.cos(theta) * (grid[None] + px) + math.sin(theta) * py) + phase  # (T, W)
        b = k * math.sin(theta) * grid
        rows += [np.cos(b), np.sin(b)]
        cols += [np.sin(a)[..., None] * colour, np.cos(a)[..., None] * colour]
    right = np.stack(cols, axis=1).reshape(frames, len(cols), size * 3)
    image = 0.5 + (np.stack(rows, axis=1) @ right).reshape(frames, size, size, 3)
    centre = np.array([c for c, _, _ in background.disks])[:, None, :]  # (D, 1, 2)
    dx = grid[None, None] + px[None] - centre[..., 0:1]  # (D, T, W)
    dy = grid[None, None] + py[None] - centre[..., 1:2]  # (D, T, H)
    dist = np.sqrt(dx[:, :, None, :] ** 2 + dy[:, :, :, None] ** 2)
    radius = np.array([r for _, r, _ in background.disks])[:, None, None, None]
    cover = np.clip((radius - dist) * size, 0.0, 1.0)
    image += np.tensordot(cover, np.array([c for _, _, c in background.disks]), axes=(0, 0))
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _shape_mask(label: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside of shape ``label`` in its own coordinates (unit circumradius), boolean."""
    r = np.hypot(u, v)
    name = MOVING_SHAPES[label]
    if name == "disk":
        return r <= 1.0
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.72
    if name == "triangle":
        inside = np.ones_like(u, dtype=bool)
        for angle in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3):
            inside &= u * math.cos(angle) + v * math.sin(angle) >= -0.5
        return inside
    if name == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if name == "plus":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.32) & (av <= 1.0)) | ((av <= 0.32) & (au <= 1.0))
    return np.abs(u) + np.abs(v) <= 1.0  # diamond


def levy_path(rng: np.random.Generator, frames: int, *, radius: float, speed: float,
              jump_prob: float) -> np.ndarray:
    """Positions ``(frames, 2)`` in ``[radius, 1 - radius]^2``: drift + wander + rare jumps.

    Args:
        rng: Source of randomness.
        frames: Number of frames.
        radius: Margin kept from the edges (the shape's radius, in frame sides).
        speed: Typical drift per frame, in frame sides.
        jump_prob: Probability of a jump between two frames.
    """
    low, high = radius, 1.0 - radius
    pos = rng.uniform(low, high, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    vel = speed * rng.uniform(0.5, 1.5) * np.array([math.cos(angle), math.sin(angle)])
    out = np.empty((frames, 2))
    for t in range(frames):
        if t:
            vel = vel + rng.normal(0.0, 0.25 * speed, size=2)
            step = vel.copy()
            if rng.random() < jump_prob:
                leap = rng.uniform(0.2, 0.4) * (high - low)
                turn = rng.uniform(0, 2 * math.pi)
                step += leap * np.array([math.cos(turn), math.sin(turn)])
            pos = pos + step
            for axis in range(2):  # bounce off the edges
                if pos[axis] < low:
                    pos[axis], vel[axis] = 2 * low - pos[axis], abs(vel[axis])
                elif pos[axis] > high:
                    pos[axis], vel[axis] = 2 * high - pos[axis], -abs(vel[axis])
                pos[axis] = min(max(pos[axis], low), high)
        out[t] = pos
    return out


def render_video(
    seed: int,
    index: int,
    *,
    size: int = 32,
    frames: int = 32,
    classes: int = 6,
    jump_prob: float = 0.1,
    speed: float = 0.03,
) -> tuple[np.ndarray, int]:
    """Render video ``index`` of the data set ``seed``.

    Args:
        seed: Seed of the data set (>= 0).
        index: Index of the video (>= 0); its label is ``index % classes``.
        size: Side of the square frames in pixels (>= 8).
        frames: Number of frames (>= 1).
        classes: Number of shape classes (2 to 6).
        jump_prob: Probability of a jump of the shape between two frames, in ``[0, 1]``.
        speed: Typical drift of the shape per frame, in frame sides (>= 0).

    Returns:
        uint8 frames ``(frames, size, size, 3)`` and the label.

    Raises:
        ValueError: naming the invalid argument and its valid range.
    """
    for name, value, low in (("seed", seed, 0), ("index", index, 0), ("size", size, 8),
                             ("frames", frames, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(classes, bool) or not 2 <= classes <= len(MOVING_SHAPES):
        raise ValueError(f"classes must be in 2..{len(MOVING_SHAPES)}, got {classes!r}")
    if not 0.0 <= jump_prob <= 1.0:
        raise ValueError(f"jump_prob must be in [0, 1], got {jump_prob!r}")
    if not speed >= 0:
        raise ValueError(f"speed must be >= 0, got {speed!r}")
    rng = np.random.default_rng([int(seed), int(index)])
    label = int(index) % classes

    background = draw_background(rng, frames)

    # Background: coloured gratings and soft disks, evaluated at panned coordinates.
    side = size * _SUPERSAMPLE
    grid = (np.arange(side) + 0.5) / side
    y, x = np.meshgrid(grid, grid, indexing="ij")
    xs = x[None] + background.pan[:, 0, None, None]
    ys = y[None] + background.pan[:, 1, None, None]
    image = np.full((frames, side, side, 3), 0.5, dtype=np.float32)
    for freq, theta, phase, colour in background.gratings:
        wave = np.sin(2 * math.pi * freq * (xs * math.cos(theta) + ys * math.sin(theta)) + phase)
        image += wave[..., None].astype(np.float32) * colour
    for centre, radius, colour in background.disks:
        dist = np.hypot(xs - centre[0], ys - centre[1])
        cover = np.clip((radius - dist) * side / 2, 0.0, 1.0).astype(np.float32)
        image += cover[..., None] * colour

    # Foreground: the shape along its Lévy-like path, turning steadily.
    radius = rng.uniform(0.15, 0.25)
    path = levy_path(rng, frames, radius=radius, speed=speed, jump_prob=jump_prob)
    angle = rng.uniform(0, 2 * math.pi) + rng.uniform(-0.1, 0.1) * np.arange(frames)
    hue = rng.uniform(0, 2 * math.pi)
    fg = 0.5 + 0.45 * np.cos(hue + np.array([0.0, 2.0, 4.0]) * math.pi / 3)
    fg = fg.astype(np.float32)
    dx = (x[None] - path[:, 0, None, None]) / radius
    dy = (y[None] - path[:, 1, None, None]) / radius
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    inside = _shape_mask(label, cos * dx + sin * dy, -sin * dx + cos * dy)
    image = np.where(inside[..., None], fg, image)

    # 2x2 supersampling down to the output size, then 8 bits.
    image = image.reshape(frames, size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(2, 4))
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8), label
