"""Scene clips: exact instance maps and point tracks, and the ``scene_video`` data source.

The ground truth is checked against independent re-computations from the objects' parameters
(:func:`scene_clip_objects`): full masks evaluated here at the pixel centres, the painter's
order, and each track point tested against its shape.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from levyjepa import DATA
from levyjepa.data.generated.moving_shapes import (
    _shape_mask,
    draw_background,
    paint_background,
    render_video,
)
from levyjepa.data.generated.scene_clips import (
    SceneClip,
    _avoid_colours,
    clip_label,
    render_scene_clip,
    scene_clip_objects,
)
from levyjepa.data.generated.scene_video import TEST_START, SceneClipVideos

CASES = [dict(), dict(size=48, frames=9, objects=(3, 3), points=12),
         dict(size=16, frames=5, objects=(1, 2), classes=2, points=2),
         dict(objects=(6, 6), points=6, jump_prob=0.5, speed=0.08)]


def clips(count: int = 6, **kwargs: object) -> list[tuple[dict, SceneClip]]:
    """``(arguments, clip)`` for ``count`` indices of every case."""
    out = []
    for case in CASES:
        args = {**case, **kwargs}
        out += [(dict(seed=3, index=i, **args), render_scene_clip(3, i, **args))
                for i in range(count)]
    return out


def shape_inside(obj_classes: np.ndarray, obj: object, j: int, x: np.ndarray, y: np.ndarray,
                 t: np.ndarray) -> np.ndarray:
    """Whether the points ``(x, y)`` at frames ``t`` lie inside object ``j`` (0-based)."""
    cx, cy = obj.centres[j, t, 0], obj.centres[j, t, 1]
    cos = np.array([math.cos(a) for a in obj.angles[j, t].ravel()]).reshape(np.shape(t))
    sin = np.array([math.sin(a) for a in obj.angles[j, t].ravel()]).reshape(np.shape(t))
    dx, dy = (x - cx) / obj.radius[j], (y - cy) / obj.radius[j]
    return _shape_mask(int(obj_classes[j]), cos * dx + sin * dy, cos * dy - sin * dx)


def full_masks(args: dict) -> np.ndarray:
    """Unoccluded hard masks at the pixel centres, bool ``(N, T, H, W)``."""
    obj = scene_clip_objects(**args)
    size, frames = obj_size(args), obj.centres.shape[1]
    t, row, col = np.meshgrid(np.arange(frames), np.arange(size), np.arange(size), indexing="ij")
    return np.stack([shape_inside(obj.classes, obj, j, col + 0.5, row + 0.5, t)
                     for j in range(len(obj.classes))])


def obj_size(args: dict) -> int:
    return int(args.get("size", 32))


def test_shapes_dtypes_and_distinct_classes() -> None:
    for args, clip in clips(3):
        frames = args.get("frames", 16)
        size, points, n = obj_size(args), args.get("points", 8), len(clip.classes)
        assert clip.frames.shape == (frames, size, size, 3) and clip.frames.dtype == np.uint8
        assert clip.instances.shape == (frames, size, size) and clip.instances.dtype == np.int64
        assert clip.tracks.shape == (points, frames, 2) and clip.tracks.dtype == np.float32
        assert clip.visible.shape == (points, frames) and clip.visible.dtype == bool
        assert clip.point_object.dtype == np.int64 and clip.classes.dtype == np.int64
        lo, hi = args.get("objects", (2, 4))
        assert lo <= n <= hi and len(set(clip.classes.tolist())) == n
        assert 0 <= clip.classes.min() and clip.classes.max() < args.get("classes", 6)
        assert set(clip.point_object.tolist()) == set(range(1, n + 1))  # >= 1 point per object
        assert np.bincount(clip.point_object).max() - np.bincount(clip.point_object)[1:].min() <= 1


def test_pixels_of_an_instance_have_its_colour_and_no_other_pixel_does() -> None:
    for args, clip in clips():
        colours = scene_clip_objects(**args).colours
        assert len({tuple(c) for c in colours.tolist()}) == len(colours)
        for j, colour in enumerate(colours, start=1):
            same = (clip.frames == colour).all(axis=-1)
            np.testing.assert_array_equal(same, clip.instances == j)


def test_background_pixels_equal_to_a_colour_are_moved_off_every_colour() -> None:
    # colours adjacent in red, and at the ends of the range: the first nudges clash too
    colours = np.array([[10, 20, 30], [11, 20, 30], [9, 20, 30], [0, 5, 5], [255, 7, 7]],
                       dtype=np.uint8)
    image = np.full((2, 4, 6, 3), 128, dtype=np.uint8)
    image[0, 0, :len(colours)] = colours
    image[1, 1, :len(colours)] = colours
    before = image.copy()
    _avoid_colours(image, colours)
    assert not (image[..., None, :] == colours).all(axis=-1).any()
    np.testing.assert_array_equal(image[..., 1:], before[..., 1:])  # only red moves
    assert np.abs(image[..., 0].astype(int) - before[..., 0]).max() <= 7
    assert (image[1, 2:] == 128).all()


def test_background_is_the_texture_of_render_video() -> None:
    # render_video draws its background first from the (seed, index) generator
    for index in range(3):
        video, _ = render_video(0, index, size=32, frames=6)
        background = paint_background(draw_background(np.random.default_rng([0, index]), 6), 32)
        diff = np.abs(video.astype(int) - background).max(axis=-1)
        assert np.median(diff) <= 1 and (diff <= 3).mean() > 0.75  # all but the shape


def test_instance_map_is_the_highest_object_covering_each_pixel() -> None:
    for args, clip in clips():
        masks = full_masks(args)
        ids = np.arange(1, len(masks) + 1)[:, None, None, None]
        np.testing.assert_array_equal(clip.instances, (masks * ids).max(axis=0))


def test_every_object_is_visible_in_frame_zero() -> None:
    for args, clip in clips(12, frames=1):
        area = np.bincount(clip.instances[0].ravel(), minlength=len(clip.classes) + 1)[1:]
        assert area.min() >= (8 if obj_size(args) >= 32 else 1), (args, area)
        assert clip_label(args["seed"], args["index"], size=obj_size(args),
                          objects=args.get("objects", (2, 4)), classes=args.get("classes", 6)
                          ) == clip.classes[np.argmax(area)]


def test_tracks_are_visible_exactly_when_on_their_unoccluded_object() -> None:
    for args, clip in clips():
        obj = scene_clip_objects(**args)
        size, (points, frames) = obj_size(args), clip.visible.shape
        x, y = clip.tracks[..., 0].astype(np.float64), clip.tracks[..., 1].astype(np.float64)
        t = np.broadcast_to(np.arange(frames), (points, frames))
        in_frame = (x >= 0) & (x < size) & (y >= 0) & (y < size)
        ix = np.clip(np.floor(x), 0, size - 1).astype(int)
        iy = np.clip(np.floor(y), 0, size - 1).astype(int)
        on_object = clip.instances[t, iy, ix] == clip.point_object[:, None]
        inside = np.stack([shape_inside(obj.classes, obj, int(j) - 1, x[p], y[p], t[p])
                           for p, j in enumerate(clip.point_object)])
        np.testing.assert_array_equal(clip.visible, in_frame & on_object & inside)
        assert inside.all()  # the points move rigidly with their shape
        assert clip.visible[:, 0].all()
        np.testing.assert_array_equal(clip.tracks[:, 0] % 1, 0.5)  # frame 0: pixel centres


def test_tracks_move_rigidly_with_their_object() -> None:
    for args, clip in clips(3):
        obj = scene_clip_objects(**args)
        centre = obj.centres[clip.point_object - 1]  # (P, T, 2)
        offset = clip.tracks.astype(np.float64) - centre
        dist = np.hypot(offset[..., 0], offset[..., 1])
        np.testing.assert_allclose(dist, dist[:, :1].repeat(dist.shape[1], 1), atol=1e-4)
        angle = np.arctan2(offset[..., 1], offset[..., 0]) - obj.angles[clip.point_object - 1]
        turn = np.angle(np.exp(1j * (angle - angle[:, :1])))
        assert np.abs(turn[dist > 1.0]).max() < 1e-3


def test_generator_makes_occlusions_exits_and_reentries() -> None:
    occluded = outside = reentered = vanished = 0
    for index in range(20):
        clip = render_scene_clip(0, index)
        x, y = clip.tracks[..., 0], clip.tracks[..., 1]
        in_frame = (x >= 0) & (x < 32) & (y >= 0) & (y < 32)
        ix, iy = np.clip(x, 0, 31).astype(int), np.clip(y, 0, 31).astype(int)
        above = clip.instances[np.arange(x.shape[1])[None], iy, ix] > clip.point_object[:, None]
        occluded += (in_frame & above & ~clip.visible).any(axis=1).sum()
        outside += (~in_frame).any(axis=1).sum()
        for p in range(len(x)):
            gone = np.flatnonzero(~in_frame[p])
            reentered += bool(len(gone)) and bool(clip.visible[p, gone[0]:].any())
        area = np.stack([(clip.instances == j).sum(axis=(1, 2))
                         for j in range(1, len(clip.classes) + 1)])
        vanished += (area == 0).any(axis=1).sum()
    assert occluded >= 5 and outside >= 5 and reentered >= 3 and vanished >= 2


def test_clips_are_a_pure_function_of_seed_and_index() -> None:
    a, b = render_scene_clip(1, 7), render_scene_clip(1, 7)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.frames, render_scene_clip(1, 8).frames)
    assert not np.array_equal(a.frames, render_scene_clip(2, 7).frames)
    # the layout does not depend on the length of the clip
    short = render_scene_clip(1, 7, frames=3)
    np.testing.assert_array_equal(short.instances[0], a.instances[0])
    np.testing.assert_array_equal(short.classes, a.classes)


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(seed=-1), "seed"), (dict(index=1.5), "index"), (dict(size=8), "size"),
    (dict(frames=0), "frames"), (dict(classes=1), "classes"), (dict(classes=7), "classes"),
    (dict(objects=(0, 2)), "objects"), (dict(objects=(3, 2)), "objects"),
    (dict(objects=(2, 5), classes=4), "objects"), (dict(objects=3), "objects"),
    (dict(jump_prob=1.5), "jump_prob"), (dict(speed=-0.1), "speed"),
    (dict(speed=float("nan")), "speed"), (dict(points=3), "points"),
])
def test_bad_arguments_are_refused_naming_them(kwargs: dict, name: str) -> None:
    args = {"seed": 0, "index": 0, **kwargs}
    with pytest.raises(ValueError, match=rf"^{name} must be") as err:
        render_scene_clip(args.pop("seed"), args.pop("index"), **args)
    assert "\n" not in str(err.value)


TINY = dict(size=16, video_frames=12, frames_per_clip=4, frame_step=2, views=2,
            train_size=6, test_size=4, classes=4, objects=(2, 3), points=4)


def test_data_source_builds_and_yields_clips_with_ground_truth() -> None:
    splits = DATA.build({"name": "scene_video", **TINY})
    assert splits.num_classes == 4
    views, label = splits.train[0]
    assert views.shape == (2, 3, 4, 16, 16) and views.dtype == torch.float32
    view, test_label = splits.test[1]
    assert view.shape == (3, 4, 16, 16) and 0 <= label < 4 and 0 <= test_label < 4
    test = splits.test.videos
    assert isinstance(test, SceneClipVideos) and test.start == TEST_START
    truth = test.ground_truth(1)
    expected = render_scene_clip(0, TEST_START + 1, size=16, frames=12, classes=4,
                                 objects=(2, 3), points=4)
    for x, y in zip(truth, expected):
        np.testing.assert_array_equal(x, y)
    area = np.bincount(truth.instances[0].ravel())[1:]
    assert test_label == truth.classes[np.argmax(area)]
    assert splits.train.labels.tolist() == [clip_label(0, i, size=16, objects=(2, 3), classes=4)
                                            for i in range(6)]


def test_data_source_items_do_not_depend_on_loader_workers() -> None:
    splits = DATA.build({"name": "scene_video", **TINY})
    serial = list(DataLoader(splits.train, batch_size=3, num_workers=0))
    parallel = list(DataLoader(splits.train, batch_size=3, num_workers=2))
    for (va, la), (vb, lb) in zip(serial, parallel):
        torch.testing.assert_close(va, vb, rtol=0, atol=0)
        assert la.tolist() == lb.tolist()


@pytest.mark.parametrize(("key", "value", "name"), [
    ("size", 8, "size"), ("objects", [3, 2], "objects"), ("points", 1, "points"),
    ("classes", 9, "classes"), ("train_size", 0, "train_size"),
])
def test_data_source_refuses_bad_parameters(key: str, value: object, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        DATA.build({"name": "scene_video", **{**TINY, key: value}})
