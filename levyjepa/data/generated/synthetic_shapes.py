"""``synthetic_shapes``: the embedded default data source, generated, no files needed."""

from __future__ import annotations

from levyjepa.core.registry import DATA
from levyjepa.data.generated.dead_leaves import check_image_args, render_shapes
from levyjepa.data.loading.image_source import ImageSource, labelled

# Test images are drawn from a disjoint range of generator indices.
_TEST_START = 1 << 40


@DATA.register("synthetic_shapes")
def synthetic_shapes(
    *,
    size: int = 32,
    train_size: int = 4000,
    test_size: int = 1000,
    classes: int = 10,
    leaves: int = 32,
    rotation: float = 1.0,
    instances: int = 1,
    seed: int = 0,
) -> ImageSource:
    """Labelled shapes over dead-leaves backgrounds (:mod:`~levyjepa.data.generated.dead_leaves`).

    Images are rendered once, in memory, when the source is built; their views are the recipe's
    ``views`` section (``views: {name: light}``: random crops, flips and colour changes, the
    image itself as the test view).

    Args:
        size: Image side in pixels.
        train_size: Number of training images.
        test_size: Number of test images (0: no evaluation).
        classes: Number of shape classes (2 to 10).
        leaves: Occluding disks in each background.
        rotation: Range of the shapes' rotation as a fraction of a turn (0: upright).
        instances: Shapes of the image's class per image (smaller when there are more).
        seed: Seed of the images.

    Raises:
        ValueError: naming the invalid parameter and its valid range (before any rendering).
    """
    for name, value, low in (("train_size", train_size, 1), ("test_size", test_size, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    check_image_args(size=size, classes=classes, leaves=leaves, rotation=rotation,
                     instances=instances)
    images, labels = render_shapes(train_size, size=size, seed=seed, classes=classes,
                                   leaves=leaves, rotation=rotation, instances=instances)
    test = None
    if test_size:
        test = labelled(*render_shapes(test_size, size=size, seed=seed, start=_TEST_START,
                                       classes=classes, leaves=leaves, rotation=rotation,
                                       instances=instances))
    return ImageSource(train=labelled(images, labels), test=test, num_classes=classes,
                       image_size=size)
