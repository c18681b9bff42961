"""``scenes``: generated scenes of several shapes with exact per-pixel maps (no files needed).

Pretraining sees the images only (views of them, made as the recipe's ``views`` section says,
as for ``synthetic_shapes``); the semantic and instance maps of
:func:`levyjepa.data.generated.scenes.render_scenes` are read by the dense probes of
:mod:`levyjepa.eval` (``task=segmentation``), which render the same scenes again from the
recipe's ``data`` section. The classification label of a scene, for the online probe and
``task=classification``, is the class of its largest visible shape.

Example (a tiny CPU run)::

    python -m levyjepa.run recipes/studies/image_levy2d.yaml trainer.max_steps=2
"""

from __future__ import annotations

import torch

from levyjepa.core.registry import DATA
from levyjepa.data.generated.scenes import check_scene_args, render_scenes
from levyjepa.data.loading.image_source import ImageSource, labelled

TEST_START = 1 << 40
"""Index of the first test scene: train and test scenes come from disjoint index ranges."""


def largest_shape_class(semantic: torch.Tensor, classes: int) -> torch.Tensor:
    """Class (``0..classes-1``) of the shape covering the most pixels of each scene.

    Args:
        semantic: int64 ``(n, H, W)`` semantic maps (0 background, ``1 + class``).
        classes: Number of shape classes.

    Returns:
        int64 ``(n,)``; ties go to the smaller class.
    """
    counts = torch.zeros(semantic.shape[0], classes + 1, dtype=torch.int64)
    counts.scatter_add_(1, semantic.flatten(1), torch.ones_like(semantic.flatten(1)))
    return counts[:, 1:].argmax(dim=1)


def scene_params(cfg: dict) -> dict:
    """The :func:`render_scenes` keyword arguments of a ``scenes`` recipe section."""
    keys = ("size", "seed", "classes", "shapes", "leaves", "rotation")
    defaults = dict(size=32, seed=0, classes=10, shapes=(2, 5), leaves=32, rotation=1.0)
    out = {k: cfg.get(k, defaults[k]) for k in keys}
    out["shapes"] = tuple(out["shapes"])
    return out


@DATA.register("scenes")
def scenes(
    *,
    size: int = 32,
    train_size: int = 4000,
    test_size: int = 1000,
    classes: int = 10,
    shapes: tuple[int, int] = (2, 5),
    leaves: int = 32,
    rotation: float = 1.0,
    seed: int = 0,
) -> ImageSource:
    """Scenes of 2-5 occluding shapes of distinct classes (:mod:`levyjepa.data.generated.scenes`).

    Args:
        size: Image side in pixels (>= 32).
        train_size: Number of training scenes.
        test_size: Number of test scenes (0: no evaluation).
        classes: Number of shape classes (2 to 10).
        shapes: ``[min, max]`` shapes per scene (``1 <= min <= max <= classes``).
        leaves: Disks of the dead-leaves background.
        rotation: Range of the shapes' angles as a fraction of a turn (0: upright).
        seed: Seed of the scenes.

    Returns:
        The scene images (their views: the recipe's ``views`` section), labelled by the class of
        their largest visible shape.

    Raises:
        ValueError: naming the invalid parameter and its valid range (before any rendering).
    """
    for name, value, low in (("train_size", train_size, 1), ("test_size", test_size, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    params = dict(size=size, seed=seed, classes=classes, shapes=tuple(shapes), leaves=leaves,
                  rotation=rotation)
    check_scene_args(size=size, classes=classes, shapes=params["shapes"], leaves=leaves,
                     rotation=rotation)
    train = render_scenes(train_size, **params)
    test = None
    if test_size:
        scenes_test = render_scenes(test_size, first=TEST_START, **params)
        test = labelled(scenes_test.images, largest_shape_class(scenes_test.semantic, classes))
    return ImageSource(train=labelled(train.images, largest_shape_class(train.semantic, classes)),
                       test=test, num_classes=classes, image_size=size)
