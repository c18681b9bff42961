"""Counter-based random streams of the dead leaves images and the parameters drawn from them.

Uniform ``j`` of item ``i`` in stream ``s`` of a seed is a SplitMix64 hash of ``(seed, s, i, j)``,
computed for a whole batch at once, so every parameter is a pure function of its indices and a
slice of a batch draws what that slice drawn alone would. Streams of
:mod:`levyjepa.data.generated.dead_leaves`: 0 the per-image parameters (the layout ``H_*`` of
``head``, then ``LEAF`` uniforms per leaf), 1 the balanced labels, 2 the cells of the shapes,
``2 + j`` the extra shape instance ``j``. :mod:`levyjepa.data.generated.scenes` draws from the
same functions.
"""

from __future__ import annotations

import math

import numpy as np

FG_CANDIDATES = 12
"""Number of random candidate colours for a foreground shape."""
# Layout of the per-image random vector drawn before the leaves (all uniform in [0, 1)).
H_POS = 0
"""Offset in ``head`` of the shape centre (2 values: x, y)."""
H_SCALE = 2
"""Offset in ``head`` of the shape size (1 value)."""
H_ANGLE = 3
"""Offset in ``head`` of the shape angle (1 value)."""
H_SHADE = 4
"""Offset in ``head`` of the shading (2 values: amplitude, direction)."""
H_BASE = 6
"""Offset in ``head`` of the base colour (5 values: value, saturation, 3 hue)."""
H_FG = 11
"""Offset in ``head`` of the foreground candidate colours (``3 * FG_CANDIDATES`` values)."""
HEAD = H_FG + 3 * FG_CANDIDATES
"""Number of per-image uniforms in ``head``."""
LEAF = 10
"""Uniforms per leaf: centre x, y, radius, colour (value, saturation, 3 hue), gradient x, y."""


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_GOLDEN2 = np.uint64(0xD1B54A32D192ED03)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective, well-mixing hash of ``uint64`` arrays (wraps mod 2^64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def stream_keys(seed: int, stream: int, items: np.ndarray) -> np.ndarray:
    """One 64-bit key per item of ``items`` (uint64) for random stream ``stream`` of ``seed``."""
    base = _mix(np.array([seed], dtype=np.uint64) ^ _mix(np.array([stream], dtype=np.uint64)))
    return _mix(base + items * _GOLDEN)


def uniforms(keys: np.ndarray, first: int, width: int) -> np.ndarray:
    """Counter-based uniforms in [0, 1): entry ``(i, j)`` hashes ``keys[i]`` with ``first + j``.

    Entry ``(i, j)`` depends only on ``keys[i]`` and ``first + j``, so a wider draw extends a
    narrower one instead of changing it.
    """
    counters = np.arange(first, first + width, dtype=np.uint64)
    bits = _mix(keys[:, None] + counters[None, :] * _GOLDEN2)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def balanced_labels(first: int, count: int, seed: int, classes: int) -> np.ndarray:
    """Balanced labels: each aligned block of ``classes`` indices is a random permutation."""
    if count == 0:
        return np.empty(0, dtype=np.int64)
    index = np.arange(first, first + count, dtype=np.int64)
    block, offset = np.divmod(index, classes)
    blocks = np.arange(block[0], block[-1] + 1, dtype=np.uint64)
    # Sorting random keys gives a uniformly random permutation of the classes in each block.
    perms = np.argsort(uniforms(stream_keys(seed, 1, blocks), 0, classes), axis=1, kind="stable")
    return perms[block - block[0], offset].astype(np.int64)


def draw_params(
    first: int, count: int, seed: int, leaves: int, rotation: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image random parameters, a pure function of ``(seed, index)``.

    Returns:
        ``head`` ``(count, HEAD)`` uniforms, ``trig`` ``(count, 4)`` holding cos and sin of the
        shape rotation and of the shading direction, and ``leaf`` ``(count, leaves, LEAF)``
        uniforms. The head uses the first counters of each image's stream, so the foreground
        and base colour do not depend on ``leaves``.
    """
    keys = stream_keys(seed, 0, np.arange(first, first + count, dtype=np.uint64))
    head = uniforms(keys, 0, HEAD)
    leaf = uniforms(keys, HEAD, leaves * LEAF).reshape(count, leaves, LEAF)
    return head, _trig(head, rotation), leaf


def instance_params(
    first: int, count: int, seed: int, instance: int, rotation: float
) -> tuple[np.ndarray, np.ndarray]:
    """``head`` and ``trig`` of the extra shape ``instance`` (>= 1) of every image.

    Each extra instance has its own random stream, so adding instances leaves the background,
    the first shape and the other instances unchanged.
    """
    keys = stream_keys(seed, 2 + instance, np.arange(first, first + count, dtype=np.uint64))
    head = uniforms(keys, 0, HEAD)
    return head, _trig(head, rotation)


def shape_cells(first: int, count: int, seed: int, grid: int) -> np.ndarray:
    """A random permutation of the ``grid * grid`` cells per image, ``(count, grid * grid)``.

    Shape ``j`` of an image goes in cell ``[:, j]``: the shapes never overlap, and when they
    are fewer than the cells the empty ones are anywhere.
    """
    keys = stream_keys(seed, 2, np.arange(first, first + count, dtype=np.uint64))
    return np.argsort(uniforms(keys, 0, grid * grid), axis=1, kind="stable")


def _trig(head: np.ndarray, rotation: float) -> np.ndarray:
    """cos and sin of the shape rotation and of the shading direction, ``(count, 4)``."""
    count = head.shape[0]
    # Scalar libm calls per image: the same bits whatever batch an image is rendered in (a
    # vectorised sin/cos may round differently in its SIMD body and its scalar tail).
    two_pi = 2.0 * math.pi
    # ``rotation`` scales the shape's angle range: 1 any angle, 0 upright.
    angles = (two_pi * head[:, [H_ANGLE, H_SHADE + 1]] * np.array([rotation, 1.0])).tolist()
    trig = np.array(
        [(math.cos(a), math.sin(a), math.cos(b), math.sin(b)) for a, b in angles],
        dtype=np.float64,
    ).reshape(count, 4)
    return trig
