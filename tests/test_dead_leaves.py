"""Tests of the dead leaves shape generator (levyjepa.data.generated.dead_leaves)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from levyjepa.data.generated import dead_leaves as dl
from levyjepa.data.generated import random_streams, shape_masks
from levyjepa.data.generated.dead_leaves import SHAPE_CLASSES, render_shapes

# Area of each shape in units of its squared circumradius (see shape_masks.shape_inside).
_UNIT_AREA = {
    "disk": math.pi * 0.9**2,
    "square": 1.4**2,
    "triangle": 3.0 * math.sqrt(3.0) / 4.0,
    "ring": math.pi * (1.0 - 0.55**2),
    "plus": 2 * (0.6 * 1.9) - 0.6**2,
    "diamond": 2.0 * 0.6,
    "ellipse": math.pi * 0.55,
    "star": 1.1226,  # regular pentagram with unit circumradius
    "hexagon": 1.5 * math.sqrt(3.0) * 0.95**2,
    "half_disk": math.pi * 0.92**2 / 2.0,
}
# Circumradius over image side: half the scale range of the generator.
_R_LO, _R_HI = shape_masks._SCALE_MIN / 2.0, shape_masks._SCALE_MAX / 2.0


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run single-threaded: these small renders gain nothing from threads, and on a loaded
    machine waiting for a descheduled worker thread at every operation makes them crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _foreground_masks(images: torch.Tensor) -> np.ndarray:
    """Foreground of images rendered with ``leaves=0``: pixels far from the median colour.

    Without leaves the background is one colour under a mild shading ramp (at most about 55
    levels from its median), and the foreground colour is chosen far from it (well over 150
    levels), so a threshold halfway separates the two.
    """
    img = images.numpy().astype(np.float64)
    median = np.median(img.reshape(img.shape[0], 3, -1), axis=2)
    dist = np.sqrt(((img - median[:, :, None, None]) ** 2).sum(axis=1))
    return dist > 90.0


def test_shapes_and_dtypes() -> None:
    images, labels = render_shapes(7, size=16, seed=0)
    assert images.shape == (7, 3, 16, 16) and images.dtype == torch.uint8
    assert labels.shape == (7,) and labels.dtype == torch.int64
    assert int(labels.min()) >= 0 and int(labels.max()) < 10
    images, labels = render_shapes(0, size=8, seed=0)
    assert images.shape == (0, 3, 8, 8) and labels.shape == (0,)
    assert len(SHAPE_CLASSES) == 10 and len(set(SHAPE_CLASSES)) == 10


def test_deterministic_and_slice_consistent() -> None:
    a_img, a_lab = render_shapes(20, size=24, seed=3)
    b_img, b_lab = render_shapes(20, size=24, seed=3)
    assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab)
    c_img, c_lab = render_shapes(10, size=24, seed=3, start=5)
    assert torch.equal(c_img, a_img[5:15]) and torch.equal(c_lab, a_lab[5:15])
    # Across the generator's internal chunks, made 3 images long here.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dl, "_CHUNK_PIXELS", 3 * 24 * 24)
        d_img, d_lab = render_shapes(10, size=24, seed=3, start=5)
        e_img, e_lab = render_shapes(20, size=24, seed=3)
    assert torch.equal(d_img, c_img) and torch.equal(d_lab, c_lab)
    assert torch.equal(e_img, a_img) and torch.equal(e_lab, a_lab)


def test_independent_of_thread_count() -> None:
    one = render_shapes(8, size=64, seed=5)  # single-threaded (fixture)
    torch.set_num_threads(2)
    two = render_shapes(8, size=64, seed=5)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


def test_seeds_and_indices_differ() -> None:
    a, a_lab = render_shapes(10, size=16, seed=0)
    b, b_lab = render_shapes(10, size=16, seed=1)
    assert not torch.equal(a_lab, b_lab)
    # Every image differs from the same index under another seed and from its neighbours.
    assert all(not torch.equal(a[i], b[i]) for i in range(10))
    assert all(not torch.equal(a[i], a[i + 1]) for i in range(9))
    neg, _ = render_shapes(10, size=16, seed=-1)
    assert not torch.equal(neg, a)


def test_labels_balanced() -> None:
    _, labels = render_shapes(1000, size=8, seed=0, leaves=0)
    counts = np.bincount(labels.numpy(), minlength=10)
    assert np.all(np.abs(counts - 100) <= 10), counts
    # Each aligned block of `classes` indices holds every class once, in a shuffled order.
    blocks = labels.numpy().reshape(-1, 10)
    assert np.all(np.sort(blocks, axis=1) == np.arange(10))
    assert len({tuple(b) for b in blocks}) > 90
    _, labels = render_shapes(1000, size=8, seed=2, start=3, classes=7, leaves=0)
    counts = np.bincount(labels.numpy(), minlength=7)
    assert counts.shape == (7,) and np.all(np.abs(counts - 1000 / 7) <= 100 / 7), counts


def test_each_image_contains_its_shape() -> None:
    size, count = 32, 400
    images, labels = render_shapes(count, size=size, seed=0, leaves=0)
    masks = _foreground_masks(images)
    lab = labels.numpy()
    # The thresholded foreground is exactly the shape's coverage: every pixel fully covered by
    # the shape is foreground and every uncovered pixel is background.
    head, trig, _ = random_streams.draw_params(0, count, 0, 0)
    cover = shape_masks._foreground_cover(head, trig, lab, size).numpy()
    assert not np.any(masks & (cover == 0))
    assert np.all(masks[cover == shape_masks._SS**2])
    # The area matches the class's shape at the generator's range of scales.
    frac = masks.mean(axis=(1, 2))
    for k, name in enumerate(SHAPE_CLASSES):
        area = _UNIT_AREA[name]
        lo, hi = 0.85 * area * _R_LO**2, 1.15 * area * _R_HI**2
        f = frac[lab == k]
        assert f.size > 20
        assert np.all((f > lo) & (f < hi)), (name, f.min(), f.max(), lo, hi)


def test_shape_stands_out_from_leaves() -> None:
    size, count = 32, 200
    images, labels = render_shapes(count, size=size, seed=4)
    head, trig, _ = random_streams.draw_params(0, count, 4, 32)
    cover = shape_masks._foreground_cover(head, trig, labels.numpy(), size)
    near = torch.nn.functional.max_pool2d(cover[:, None].float(), 5, stride=1, padding=2)
    band = ((near[:, 0] > 0) & (cover == 0)).numpy()
    full = (cover == shape_masks._SS**2).numpy()
    img = images.numpy().astype(np.float64)
    # Mean colour of the fully covered pixels, per image: (count, 3).
    inside = (img * full[:, None]).sum(axis=(2, 3)) / full.sum(axis=(1, 2))[:, None]
    far = np.sqrt(((img - inside[:, :, None, None]) ** 2).sum(axis=1)) > 40.0
    # Most of the background along the outline contrasts with the shape, in every image.
    contrast = (far & band).sum(axis=(1, 2)) / band.sum(axis=(1, 2))
    assert contrast.min() > 0.9, (contrast.argmin(), contrast.min())


def test_classes_have_distinct_shapes() -> None:
    # Canonical masks on a grid; for every pair, even the best rotation and rescaling of one
    # leaves a clear difference from the other.
    grid = (torch.arange(72) + 0.5) / 30.0 - 1.2  # cell centres on [-1.2, 1.2]
    v, u = torch.meshgrid(-grid, grid, indexing="ij")
    masks = [shape_masks.shape_inside(k, u, v) for k in range(len(SHAPE_CLASSES))]
    for k, name in enumerate(SHAPE_CLASSES):
        area = masks[k].float().mean().item() * 2.4**2
        assert abs(area - _UNIT_AREA[name]) < 0.06 * _UNIT_AREA[name], name
        assert not masks[k][(u * u + v * v) > 1.0005].any(), name  # inside the unit circle
    # All rotations (10 degree steps) and rescalings at once: (poses, rows, cols).
    angle = torch.arange(36, dtype=torch.float32) * (2.0 * math.pi / 36.0)
    angle = angle.repeat_interleave(3)[:, None, None]
    scale = torch.tensor([0.9, 1.0, 1.1]).repeat(36)[:, None, None]
    c, s = torch.cos(angle), torch.sin(angle)
    pu, pv = (c * u + s * v) / scale, (c * v - s * u) / scale
    for b in range(len(masks)):
        posed = shape_masks.shape_inside(b, pu, pv)
        for a in range(len(masks)):
            if a == b:
                continue
            inter = (masks[a] & posed).sum(dim=(1, 2))
            union = (masks[a] | posed).sum(dim=(1, 2))
            best = (inter / union).max().item()
            assert best < 0.95, (SHAPE_CLASSES[a], SHAPE_CLASSES[b], best)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": -1}, "count must be >= 0"),
        ({"size": 7}, "size must be >= 8"),
        ({"size": 32.0}, "size must be an integer >= 8"),
        ({"classes": 1}, "classes must be in 2..10"),
        ({"classes": 11}, "classes must be in 2..10"),
        ({"leaves": -1}, "leaves must be >= 0"),
        ({"instances": 0}, "instances must be >= 1"),
        ({"start": -2}, "start must be >= 0"),
        ({"seed": "0"}, "seed must be an integer"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"count": 2, "size": 16, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        render_shapes(**args)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_instances_one_per_cell_and_of_the_image_class() -> None:
    # Nine shapes per image on a 3x3 layout of cells (side 16 px in a 48 px image): every cell
    # holds one shape of the image's class, with about its area at the cell's scale (loosely:
    # at radii of 3 to 5 px the anti-aliased edges weigh). Instance 0 is the single-shape
    # image's shape, shrunk into its cell.
    size, count, grid = 48, 60, 3
    images, labels = render_shapes(count, size=size, seed=2, leaves=0, instances=9)
    masks = _foreground_masks(images)
    side = size // grid
    cells = masks.reshape(count, grid, side, grid, side)
    lab = labels.numpy()
    for b in range(count):
        name = SHAPE_CLASSES[lab[b]]
        for r in range(grid):
            for c in range(grid):
                frac = cells[b, r, :, c, :].mean()
                lo = 0.6 * _UNIT_AREA[name] * _R_LO**2
                hi = 1.5 * _UNIT_AREA[name] * _R_HI**2
                assert lo < frac < hi, (b, name, r, c, frac, lo, hi)
    head, trig, _ = random_streams.draw_params(0, count, 2, 0)
    cells0 = random_streams.shape_cells(0, count, 2, grid)[:, 0]
    cover0 = shape_masks._foreground_cover(head, trig, lab, size, grid, cells0).numpy()
    assert np.all(masks[cover0 == shape_masks._SS**2]) and cover0.any(axis=(1, 2)).all()


def test_instances_deterministic_and_slice_consistent() -> None:
    many, lab = render_shapes(24, size=32, seed=5, instances=5, leaves=4)
    part, lab_part = render_shapes(8, size=32, seed=5, instances=5, leaves=4, start=10)
    assert torch.equal(many[10:18], part) and torch.equal(lab[10:18], lab_part)
    one, _ = render_shapes(24, size=32, seed=5, instances=1, leaves=4)
    assert torch.equal(one, render_shapes(24, size=32, seed=5, leaves=4)[0])
    assert (many != one).any(dim=(1, 2, 3)).all()
