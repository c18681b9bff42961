"""``synthetic_shapes``: the embedded default data source, generated, no files needed."""

from __future__ import annotations

from levyjepa.data.generated.dead_leaves import check_image_args, render_shapes
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.views.multi_view import MultiViewDataset, TransformedDataset
from levyjepa.data.views.transforms import eval_transform, light_augmentation
from levyjepa.registry import DATA

# Test images are drawn from a disjoint range of generator indices.
_TEST_START = 1 << 40


@DATA.register("synthetic_shapes")
def synthetic_shapes(
    *,
    size: int = 32,
    views: int = 2,
    train_size: int = 4000,
    test_size: int = 1000,
    classes: int = 10,
    leaves: int = 32,
    rotation: float = 1.0,
    instances: int = 1,
    seed: int = 0,
    crop_scale: tuple[float, float] = (0.25, 1.0),
) -> DataSplits:
    """Labelled shapes over dead-leaves backgrounds (:mod:`~levyjepa.data.generated.dead_leaves`).

    Images are rendered once, in memory, when the source is built; train views are random
    crops, flips and colour changes of them, the test view is the image itself.

    Args:
        size: Image side in pixels.
        views: Views per training image.
        train_size: Number of training images.
        test_size: Number of test images (0: no evaluation).
        classes: Number of shape classes (2 to 10).
        leaves: Occluding disks in each background.
        rotation: Range of the shapes' rotation as a fraction of a turn (0: upright).
        instances: Shapes of the image's class per image (smaller when there are more).
        seed: Seed of the images and of their augmentation.
        crop_scale: Area range of the random resized crop.

    Raises:
        ValueError: naming the invalid parameter and its valid range (before any rendering).
    """
    for name, value, low in (("train_size", train_size, 1), ("test_size", test_size, 0),
                             ("views", views, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    check_image_args(size=size, classes=classes, leaves=leaves, rotation=rotation,
                     instances=instances)
    if len(crop_scale) != 2 or not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
        raise ValueError(f"crop_scale must be [low, high] with 0 < low <= high <= 1, got "
                         f"{list(crop_scale)}")
    images, labels = render_shapes(train_size, size=size, seed=seed, classes=classes,
                                   leaves=leaves, rotation=rotation, instances=instances)
    train = MultiViewDataset(images, labels, views=views, seed=seed,
                             transform=light_augmentation(size, crop_scale=tuple(crop_scale)))
    train_eval = TransformedDataset(images, labels, transform=eval_transform(size))
    test = None
    if test_size:
        test_images, test_labels = render_shapes(test_size, size=size, seed=seed,
                                                 start=_TEST_START, classes=classes,
                                                 leaves=leaves, rotation=rotation,
                                                 instances=instances)
        test = TransformedDataset(test_images, test_labels, transform=eval_transform(size))
    return DataSplits(train=train, test=test, num_classes=classes, train_eval=train_eval)
