"""Tests of the labelled scene generator (levyjepa.data.generated.scenes)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest
import torch
from torch.utils.data import DataLoader

from levyjepa.data.generated import scenes as sc
from levyjepa.data.generated.dead_leaves import render_shapes
from levyjepa.data.generated.scenes import SceneDataset, Scenes, render_scenes
from levyjepa.data.views.transforms import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run single-threaded (small renders on a shared machine); pytest runs the teardown."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _colour_map_agrees(scenes: Scenes, instances: torch.Tensor) -> bool:
    """Whether, in every scene, a pixel has exactly colour ``k`` iff ``instances`` says ``k``.

    Checked for every instance ``k >= 1`` of the scene, so a background pixel that had a
    shape's exact colour, or a map off by one pixel, fails it.
    """
    for b in range(scenes.images.shape[0]):
        for j in range(scenes.labels.shape[1]):
            if scenes.labels[b, j] < 0:
                continue
            colour = scenes.colours[b, j][:, None, None]
            painted = (scenes.images[b] == colour).all(dim=0)
            if not torch.equal(painted, instances[b] == j + 1):
                return False
    return True


def test_render_shapes_unchanged_by_the_refactor() -> None:
    # Hashes of render_shapes computed before dead_leaves.py exposed render_background and
    # shade_and_quantise for the scenes.
    expected = {
        (): "891ee904aa12f447e49d877342dcf6559497ecea0cf3a89673a152e6a960b560",
        (("instances", 4),): "ff91fec4e5ac68dcac18f886eb719af4e8c708239d76d2f7486a7d52ef9ff448",
        (("leaves", 0), ("rotation", 0.0)):
            "a18b0ee66600257430af0248d33e03572af7fd73881015bdded7176d312dc267",
    }
    for kwargs, digest in expected.items():
        images, labels = render_shapes(16, size=32, seed=0, **dict(kwargs))
        assert hashlib.sha256(images.numpy().tobytes()).hexdigest() == digest
        assert labels.tolist() == [5, 7, 3, 9, 2, 1, 6, 0, 8, 4, 4, 2, 3, 5, 0, 8]
    images, _ = render_shapes(16, size=32, seed=0)
    assert int(images.long().sum()) == 6283773


def test_shapes_and_dtypes() -> None:
    s = render_scenes(5, size=32, seed=0, shapes=(2, 4), masks=True)
    assert s.images.shape == (5, 3, 32, 32) and s.images.dtype == torch.uint8
    assert s.semantic.shape == s.instances.shape == (5, 32, 32)
    assert s.semantic.dtype == s.instances.dtype == torch.int64
    assert s.labels.shape == (5, 4) and s.colours.shape == (5, 4, 3)
    assert s.masks is not None and s.masks.shape == (5, 4, 32, 32)
    assert render_scenes(5, size=32).masks is None
    empty = render_scenes(0, size=32)
    assert empty.images.shape == (0, 3, 32, 32) and empty.instances.shape == (0, 32, 32)


def test_pixel_colour_equals_instance_colour_exactly_where_the_map_says() -> None:
    s = render_scenes(24, size=32, seed=3)
    assert _colour_map_agrees(s, s.instances)
    # Background pixels never carry an (active) shape colour: covered by the check above, and
    # stated directly here.
    for b in range(24):
        background = s.images[b][:, s.instances[b] == 0]  # (3, pixels)
        for j in range(int((s.labels[b] >= 0).sum())):
            assert not (background == s.colours[b, j][:, None]).all(dim=0).any()
    # The check is sharp: a map shifted by one pixel, in either axis, fails it.
    for shift, dim in ((1, 1), (-1, 1), (1, 2), (-1, 2)):
        moved = torch.roll(s.instances, shift, dims=dim)
        assert not _colour_map_agrees(s, moved)
        for b in range(24):  # and fails in every single scene
            one = Scenes(*(None if t is None else t[b : b + 1] for t in s))
            assert not _colour_map_agrees(one, moved[b : b + 1])


def test_background_pixels_equal_to_a_shape_colour_are_moved() -> None:
    # Rare in real scenes (shape colours are saturated, the background muted), so forced here:
    # colours (254, 7, 7), (255, 7, 7) and (253, 7, 7) with the last one inactive.
    colours = torch.tensor([[[254, 7, 7], [255, 7, 7], [253, 7, 7]]], dtype=torch.uint8)
    active = torch.tensor([[True, True, False]])
    img = torch.tensor([[[254, 255, 253, 0], [7, 7, 7, 7], [7, 7, 7, 7]]], dtype=torch.uint8)
    sc._avoid_colours(img, colours, active)
    # 254 -> 253 (255 is taken), 255 -> 253, and the others are left alone.
    assert img[0, 0].tolist() == [253, 253, 253, 0] and (img[0, 1:] == 7).all()
    assert not sc._clashes(img, colours, active).any()


def test_occlusion_later_shape_wins_in_map_and_pixels() -> None:
    s = render_scenes(32, size=32, seed=1, shapes=(3, 5), masks=True)
    assert s.masks is not None
    slots = s.labels.shape[1]
    # The instance map is the last (topmost) slot whose full mask covers the pixel.
    order = torch.arange(1, slots + 1)[None, :, None, None]
    expected = (s.masks.long() * order).amax(dim=1)
    assert torch.equal(s.instances, expected)
    overlaps = 0
    for b in range(32):
        for i in range(slots):
            for j in range(i + 1, slots):
                both = s.masks[b, i] & s.masks[b, j]
                if not both.any():
                    continue
                overlaps += int(both.sum())
                assert (s.instances[b][both] >= j + 1).all()
                top = s.instances[b][both] - 1
                assert torch.equal(s.images[b][:, both], s.colours[b, top].T)
                assert not (s.instances[b][both] == i + 1).any()
    assert overlaps > 50  # the scenes do overlap, so the test is not vacuous
    # Inactive slots have empty masks; active ones are visible somewhere or fully hidden.
    assert not s.masks[s.labels < 0].any()
    assert s.masks[s.labels >= 0].flatten(1).any(dim=1).all()


def test_classes_distinct_and_semantic_map() -> None:
    for classes, shapes in ((10, (2, 5)), (3, (3, 3)), (4, (1, 2))):
        s = render_scenes(40, size=32, seed=2, classes=classes, shapes=shapes)
        counts = (s.labels >= 0).sum(dim=1)
        assert counts.min() >= shapes[0] and counts.max() <= shapes[1]
        assert set(counts.tolist()) == set(range(shapes[0], shapes[1] + 1))
        for b in range(40):
            used = s.labels[b, : int(counts[b])].tolist()
            assert len(set(used)) == len(used) and all(0 <= c < classes for c in used)
            assert (s.labels[b, int(counts[b]) :] == -1).all()
            lut = torch.tensor([0] + [c + 1 for c in s.labels[b].tolist()])
            assert torch.equal(s.semantic[b], lut[s.instances[b]])
            assert int(s.instances[b].max()) <= int(counts[b])
        assert ((s.semantic == 0) == (s.instances == 0)).all()
        assert int(s.semantic.max()) <= classes


def _equal(a: Scenes, b: Scenes) -> bool:
    return all((x is None and y is None) or torch.equal(x, y) for x, y in zip(a, b))


def _rows(s: Scenes, lo: int, hi: int) -> Scenes:
    return Scenes(*(None if t is None else t[lo:hi] for t in s))


def test_deterministic_and_slices_equal_single_renders() -> None:
    batch = render_scenes(8, size=32, seed=5, masks=True)
    assert _equal(batch, render_scenes(8, size=32, seed=5, masks=True))
    for i in range(8):
        assert _equal(_rows(batch, i, i + 1), render_scenes(1, size=32, seed=5, first=i,
                                                            masks=True))
    assert _equal(_rows(batch, 3, 7), render_scenes(4, size=32, seed=5, first=3, masks=True))
    assert not torch.equal(batch.images, render_scenes(8, size=32, seed=6).images)
    # Across a chunk boundary of the renderer (128 scenes of 64 x 64 per chunk).
    big = render_scenes(131, size=64, seed=5)
    assert _equal(_rows(big, 126, 131), render_scenes(5, size=64, seed=5, first=126))


def test_dataset_items_and_dataloader_workers_agree() -> None:
    data = SceneDataset(6, size=32, seed=4, shapes=(2, 3))
    assert len(data) == 6
    image, semantic, instances = data[2]
    s = render_scenes(1, size=32, seed=4, first=2, shapes=(2, 3))
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
    torch.testing.assert_close(image, (s.images[0].float() / 255.0 - mean) / std)
    assert torch.equal(semantic, s.semantic[0]) and torch.equal(instances, s.instances[0])
    with pytest.raises(IndexError):
        data[6]
    serial = list(DataLoader(data, batch_size=3, num_workers=0))
    parallel = list(DataLoader(data, batch_size=3, num_workers=2))
    for a, b in zip(serial, parallel, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("size", [32, 48, 64])
def test_sizes(size: int) -> None:
    s = render_scenes(6, size=size, seed=0)
    assert s.images.shape == (6, 3, size, size)
    assert _colour_map_agrees(s, s.instances)
    # Shapes are sized to the image: the visible foreground is a similar fraction of it.
    fraction = (s.instances > 0).float().mean()
    assert 0.05 < fraction < 0.8


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"size": 16}, "size"),
        ({"size": 32.0}, "size"),
        ({"classes": 1}, "classes"),
        ({"classes": 11}, "classes"),
        ({"shapes": 3}, "shapes"),
        ({"shapes": (0, 2)}, "shapes[0]"),
        ({"shapes": (3, 2)}, "shapes[1]"),
        ({"shapes": (2, 11)}, "shapes[1]"),
        ({"classes": 3, "shapes": (2, 4)}, "shapes[1]"),
        ({"leaves": -1}, "leaves"),
        ({"rotation": 2.0}, "rotation"),
        ({"first": -1}, "first"),
        ({"seed": "a"}, "seed"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=re.escape(name)):
        render_scenes(2, **kwargs)
    if name != "first":
        with pytest.raises(ValueError, match=re.escape(name)):
            SceneDataset(2, **kwargs)


def test_bad_count_and_dataset_arguments() -> None:
    with pytest.raises(ValueError, match="count"):
        render_scenes(-1)
    with pytest.raises(ValueError, match="length"):
        SceneDataset(-1)
    with pytest.raises(ValueError, match="first"):
        SceneDataset(2, first=3)


def test_golden_hash() -> None:
    # Pins the scenes of seed 0: a change of layout, colours or background shows up here (update
    # the digest deliberately, saying why, when the generator is meant to change).
    digest = hashlib.sha256()
    for tensor in render_scenes(16, size=32, seed=0)[:5]:
        digest.update(tensor.numpy().tobytes())
    assert digest.hexdigest() == "d1a0cb46b7e4b109be405d1df60915a4c863351e1a57faf970bd33811137c681"
