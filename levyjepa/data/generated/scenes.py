"""Labelled scenes with exact per-pixel ground truth, for dense evaluation.

A scene is a dead leaves background (the one of :mod:`levyjepa.data.generated.dead_leaves`, shading
included) with several opaque shapes of DIFFERENT classes on top, at random positions, sizes,
angles and colours, free to overlap: they are painted in painter's order, so a later shape hides
the earlier ones. Along with the image come two maps of the same pixels:

* the semantic map: 0 for the background, ``1 + c`` where the visible shape has class ``c``
  (``SHAPE_CLASSES[c]``);
* the instance map: 0 for the background, ``j`` where the visible shape is the ``j``-th painted.

The maps are exact by construction. Each shape's mask is evaluated once, at the pixel centres
(a hard, non anti-aliased mask), and that one mask paints both the pixels and the maps. Shapes
are painted after shading and rounding, in one flat uint8 colour (of a few random saturated
candidates, the farthest from the background under the shape), so a pixel of instance ``j``
has exactly colour ``colours[j - 1]``. The converse holds too: the colours of one scene are
distinct, and a background pixel that happens to equal one of them is moved by a few levels of
red, so ``image == colours[j - 1]`` exactly where ``instances == j``.

Everything is a pure function of ``(seed, index, size, classes, shapes, leaves, rotation)``,
with the counter-based random streams of :mod:`levyjepa.data.generated.dead_leaves`; the pixel work
is elementwise or exact integer sums, so a slice of a batch equals that slice rendered alone.

Example:
    >>> scenes = render_scenes(4, size=32, seed=0)
    >>> scenes.images.shape, scenes.semantic.shape, scenes.instances.dtype
    (torch.Size([4, 3, 32, 32]), torch.Size([4, 32, 32]), torch.int64)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from levyjepa.core.errors import ConfigError
from levyjepa.data.generated.dead_leaves import (
    _CHUNK_PIXELS,
    SHAPE_CLASSES,
    _check_int,
    check_image_args,
    render_background,
    shade_and_quantise,
)
from levyjepa.data.generated.random_streams import draw_params, stream_keys, uniforms
from levyjepa.data.generated.shape_masks import shape_inside
from levyjepa.data.views.transforms import eval_transform

# Random stream of the scene layout (the background uses stream 0 of the same seed, as the
# images of render_shapes do; dead_leaves uses streams 0, 1, 2, 3, ... for its own shapes).
_STREAM = 0x5CE7E5
# Circumradius of a shape as a fraction of the image side, uniform in this range.
_RADIUS_MIN = 0.14
_RADIUS_MAX = 0.3
# Layout of the per-scene uniforms: the number of shapes, one sort key per class, then a block
# of _SLOT values per shape slot (centre x, y, radius, angle, then _CANDIDATES RGB colours).
# Fixed offsets, so slot j does not depend on the largest number of shapes.
_CANDIDATES = 8
_U_COUNT = 0
_U_CLASS = 1
_U_SLOT = _U_CLASS + len(SHAPE_CLASSES)
_SLOT = 4 + 3 * _CANDIDATES
# Offsets of the red level tried, in order, for a background pixel equal to a shape's colour.
_NUDGES = tuple(d * s for d in range(1, len(SHAPE_CLASSES) + 2) for s in (1, -1))


class Scenes(NamedTuple):
    """A batch of scenes (see :func:`render_scenes`); ``S`` is the largest number of shapes.

    Attributes:
        images: uint8 ``(n, 3, H, W)``.
        semantic: int64 ``(n, H, W)``: 0 background, ``1 + class`` of the visible shape.
        instances: int64 ``(n, H, W)``: 0 background, ``1..k`` in painter's order.
        labels: int64 ``(n, S)``: class of instance ``j + 1``, -1 for the unused slots.
        colours: uint8 ``(n, S, 3)``: RGB of instance ``j + 1`` (0 for the unused slots).
        masks: bool ``(n, S, H, W)``: full masks of the shapes, occluded parts included
            (all False for the unused slots), or None unless asked for.
    """

    images: torch.Tensor
    semantic: torch.Tensor
    instances: torch.Tensor
    labels: torch.Tensor
    colours: torch.Tensor
    masks: torch.Tensor | None


def _layout(
    first: int, count: int, seed: int, classes: int, shapes: tuple[int, int], rotation: float,
    size: int,
) -> tuple[np.ndarray, ...]:
    """The random layout of scenes ``first .. first + count - 1``.

    Returns:
        ``labels`` int64 ``(n, S)`` (-1 where unused), ``centre`` ``(n, S, 2)`` and ``radius``
        ``(n, S)`` in pixels, ``trig`` ``(n, S, 2)`` (cos, sin of the angle) and ``levels``
        int64 ``(n, S, _CANDIDATES, 3)``, the candidate colours (uint8 levels).
    """
    lo, hi = shapes
    keys = stream_keys(seed, _STREAM, np.arange(first, first + count, dtype=np.uint64))
    u = uniforms(keys, 0, _U_SLOT + hi * _SLOT)
    number = lo + np.minimum(np.floor(u[:, _U_COUNT] * (hi - lo + 1)), hi - lo).astype(np.int64)
    # Sorting random keys: a random permutation of the classes, whose first k are distinct.
    order = np.argsort(u[:, _U_CLASS : _U_CLASS + classes], axis=1, kind="stable")[:, :hi]
    active = np.arange(hi)[None, :] < number[:, None]
    labels = np.where(active, order, -1).astype(np.int64)
    slot = u[:, _U_SLOT:].reshape(count, hi, _SLOT)
    radius = size * (_RADIUS_MIN + (_RADIUS_MAX - _RADIUS_MIN) * slot[..., 2])
    # Centre uniform in [R, size - R] per axis: the circumcircle lies inside the image.
    centre = radius[..., None] + (size - 2.0 * radius[..., None]) * slot[..., 0:2]
    # Scalar libm calls: the same bits whatever batch a scene is rendered in.
    angles = (2.0 * math.pi * rotation * slot[..., 3]).ravel().tolist()
    trig = np.array([(math.cos(a), math.sin(a)) for a in angles]).reshape(count, hi, 2)
    # Saturated colours (pushed towards the faces of the RGB cube), rounded to uint8 levels.
    rgb = np.clip((slot[..., 4:] - 0.5) * 2.0 + 0.5, 0.02, 0.98)
    levels = np.floor(rgb * 255.0 + 0.5).astype(np.int64).reshape(count, hi, _CANDIDATES, 3)
    return labels, centre, radius, trig, levels


def _pick_colours(
    img: torch.Tensor, masks: list[torch.Tensor], levels: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """Each shape's colour: the candidate farthest from the background under its mask.

    Args:
        img: Background, uint8 ``(n, 3, P)``.
        masks: Per slot, the full mask bool ``(n, P)``.
        levels: Candidate colours int64 ``(n, S, _CANDIDATES, 3)``.
        active: Whether each slot holds a shape, bool ``(n, S)``.

    Returns:
        uint8 ``(n, S, 3)``, distinct within a scene (0 for the unused slots).
    """
    n, slots = active.shape
    colours = np.zeros((n, slots, 3), dtype=np.int64)
    weights = torch.stack(masks, dim=2).to(torch.float64)  # (n, P, S)
    # Sums of integers below 2^53 in float64: exact in any order, whatever the batch or threads.
    total = torch.bmm(img.to(torch.float64), weights).numpy()  # (n, 3, S)
    mean = total / np.maximum(weights.sum(dim=1).numpy(), 1.0)[:, None, :]
    for j in range(slots):
        diff = levels[:, j] - mean[:, None, :, j]
        dist = diff[..., 0] ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2  # no reduction
        colours[:, j] = levels[np.arange(n), j, dist.argmax(axis=1)]
        for _ in range(j + 1):  # make colour j differ from the earlier ones (rarely needed)
            clash = (colours[:, j : j + 1] == colours[:, :j]).all(axis=2).any(axis=1)
            if not clash.any():
                break
            colours[clash, j, 0] = (colours[clash, j, 0] + 1) % 256
    return np.where(active[..., None], colours, 0).astype(np.uint8)


def _masks(
    labels: np.ndarray, centre: np.ndarray, radius: np.ndarray, trig: np.ndarray, size: int
) -> torch.Tensor:
    """Hard masks of one shape per scene at the pixel centres, bool ``(n, size * size)``.

    Args:
        labels: Class per scene ``(n,)``, -1 for no shape (an empty mask).
        centre: ``(n, 2)`` centre (x, y) in pixels.
        radius: ``(n,)`` circumradius in pixels.
        trig: ``(n, 2)`` cos and sin of the angle.
        size: Side of the images.
    """
    n, f32 = labels.shape[0], torch.float32
    pix = torch.arange(size, dtype=f32) + 0.5
    inv_r = torch.from_numpy(1.0 / radius).to(f32)[:, None]
    ctr = torch.from_numpy(centre).to(f32)
    # Canonical coordinates (u, v) = rotation(-theta) (p - c) / R, v up (rows point down).
    dx = (pix[None, :] - ctr[:, 0:1]) * inv_r  # (n, columns)
    dy = -(pix[None, :] - ctr[:, 1:2]) * inv_r  # (n, rows)
    cos_t = torch.from_numpy(trig[:, 0]).to(f32)[:, None, None]
    sin_t = torch.from_numpy(trig[:, 1]).to(f32)[:, None, None]
    u = cos_t * dx[:, None, :] + sin_t * dy[:, :, None]
    v = cos_t * dy[:, :, None] - sin_t * dx[:, None, :]
    mask = torch.zeros((n, size, size), dtype=torch.bool)
    for k in np.unique(labels[labels >= 0]).tolist():
        sel = torch.from_numpy(np.flatnonzero(labels == k))
        mask[sel] = shape_inside(k, u[sel], v[sel])
    return mask.reshape(n, size * size)


def _clashes(img: torch.Tensor, colours: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Pixels of ``img`` (uint8 ``(n, 3, P)``) equal to an active colour, bool ``(n, P)``."""
    equal = (img[:, None, :, :] == colours[:, :, :, None]).all(dim=2)  # (n, S, P)
    return (equal & active[:, :, None]).any(dim=1)


def _avoid_colours(img: torch.Tensor, colours: torch.Tensor, active: torch.Tensor) -> None:
    """Move the red level of the pixels of ``img`` that equal an active colour (in place).

    Each such pixel takes the first red level ``red + d`` (``d`` in ``_NUDGES``, within
    0..255) at which it equals no colour of its scene: more candidates than colours, so one
    is always free.
    """
    red = img[:, 0].to(torch.int16)
    for d in _NUDGES:
        clash = _clashes(img, colours, active)
        if not clash.any():
            return
        moved = red + d
        ok = clash & (moved >= 0) & (moved <= 255)
        img[:, 0][ok] = moved[ok].to(torch.uint8)
    assert not _clashes(img, colours, active).any()  # pragma: no cover


def _render_chunk(
    first: int, count: int, seed: int, classes: int, shapes: tuple[int, int], leaves: int,
    rotation: float, size: int, want_masks: bool,
) -> Scenes:
    """Render scenes ``first .. first + count - 1`` in one go (see :func:`render_scenes`)."""
    labels, centre, radius, trig, levels = _layout(
        first, count, seed, classes, shapes, rotation, size)
    head, bg_trig, leaf = draw_params(first, count, seed, leaves)
    bg = render_background(head, leaf, size)
    img = shade_and_quantise(bg, head, bg_trig, size).reshape(count, 3, size * size)
    full = [_masks(labels[:, j], centre[:, j], radius[:, j], trig[:, j], size)
            for j in range(shapes[1])]
    col = torch.from_numpy(_pick_colours(img, full, levels, labels >= 0))
    active = torch.from_numpy(labels >= 0)
    _avoid_colours(img, col, active)
    inst = torch.zeros((count, size * size), dtype=torch.int64)
    for j, mask in enumerate(full):
        inst.masked_fill_(mask, j + 1)  # the same mask paints the map and the pixels
        img = torch.where(mask[:, None, :], col[:, j, :, None], img)
    # Semantic map: look up 1 + class of each pixel's instance (0 for the background).
    lut = torch.cat([torch.zeros((count, 1), dtype=torch.int64),
                     torch.from_numpy(labels + 1)], dim=1)
    semantic = torch.gather(lut, 1, inst)
    side = (count, size, size)
    masks = torch.stack(full, dim=1).reshape(count, -1, size, size) if want_masks else None
    return Scenes(img.reshape(count, 3, size, size), semantic.reshape(side),
                  inst.reshape(side), torch.from_numpy(labels), col, masks)


def check_scene_args(*, size: object, classes: object, shapes: object, leaves: object,
                     rotation: object) -> tuple[int, int]:
    """Refuse a scene parameter of :func:`render_scenes`; returns ``shapes`` as two ints.

    Raises:
        ValueError: naming the parameter and its valid range (a data source's caller, the
            registry, adds where it came from; :func:`render_scenes` adds its own name).
    """
    check_image_args(size=size, classes=classes, leaves=leaves, rotation=rotation,
                     instances=1)
    _check_int("size", size, 32)
    if not isinstance(shapes, (tuple, list)) or len(shapes) != 2:
        raise ValueError(f"shapes must be a pair (min, max) of integers, got {shapes!r}")
    lo = _check_int("shapes[0]", shapes[0], 1, int(classes))
    hi = _check_int("shapes[1]", shapes[1], lo, int(classes))
    return lo, hi


def render_scenes(
    count: int,
    *,
    size: int = 32,
    seed: int = 0,
    first: int = 0,
    classes: int = 10,
    shapes: tuple[int, int] = (2, 5),
    leaves: int = 32,
    rotation: float = 1.0,
    masks: bool = False,
) -> Scenes:
    """Render scenes of several shapes of distinct classes, with semantic and instance maps.

    Scene ``i`` of the result is the scene of global index ``first + i``: a pure function of
    ``(seed, first + i)`` and the parameters, so ``render_scenes(8)`` row ``i`` equals
    ``render_scenes(1, first=i)``.

    Args:
        count: Number of scenes (>= 0).
        size: Side of the square images in pixels (>= 32).
        seed: Seed of the dataset; any integer (taken modulo 2^64).
        first: Global index of the first scene (>= 0).
        classes: Shape classes in use (2..10): the classes of a scene are distinct ones among
            ``SHAPE_CLASSES[:classes]``.
        shapes: ``(min, max)`` number of shapes per scene, uniform in between, with
            ``1 <= min <= max <= classes``.
        leaves: Number of background leaves (>= 0).
        rotation: Range of the shapes' angles as a fraction of a full turn (0: upright).
        masks: Also return every shape's full (unoccluded) mask.

    Returns:
        A :class:`Scenes` tuple ``(images, semantic, instances, labels, colours, masks)``.

    Raises:
        ConfigError: A ``ValueError`` naming the invalid parameter and its valid range.
    """
    try:
        lo, hi = check_scene_args(size=size, classes=classes, shapes=shapes, leaves=leaves,
                                  rotation=rotation)
        count = _check_int("count", count, 0)
        first = _check_int("first", first, 0)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
    except ValueError as err:
        raise ConfigError(f"render_scenes: {err}") from None
    seed = int(seed) % (1 << 64)
    args = (seed, int(classes), (lo, hi), int(leaves), float(rotation), int(size), masks)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    parts = [_render_chunk(first + a, min(count, a + chunk) - a, *args)
             for a in range(0, count, chunk)] or [_render_chunk(first, 0, *args)]
    return Scenes(*(None if part[0] is None else torch.cat(part) for part in zip(*parts)))


class SceneDataset(Dataset):
    """Scenes ``0 .. length - 1`` as ``(image, semantic, instances)`` items.

    The image is normalised as by the eval transform of :mod:`levyjepa.data.views.transforms`
    (float32 ``(3, H, W)``); the maps are int64 ``(H, W)``. Items are rendered on demand and
    are a pure function of the index, so every DataLoader worker sees the same data.

    Args:
        length: Number of scenes (>= 0).
        **params: Keyword arguments of :func:`render_scenes` (size, seed, classes, shapes,
            leaves, rotation).
    """

    def __init__(self, length: int, **params: object) -> None:
        try:
            self.length = _check_int("length", length, 0)
        except ValueError as err:
            raise ConfigError(f"SceneDataset: {err}") from None
        bad = set(params) - {"size", "seed", "classes", "shapes", "leaves", "rotation"}
        if bad:
            raise ConfigError(f"SceneDataset: unknown parameter(s) {sorted(bad)}")
        render_scenes(0, **params)  # validates the parameters
        self.params = params
        self.transform = eval_transform(int(params.get("size", 32)))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"scene {index} out of range 0..{self.length - 1}")
        scene = render_scenes(1, first=index, **self.params)
        return self.transform(scene.images[0]), scene.semantic[0], scene.instances[0]
