"""``imagenette``: the seed experiments' data (Imagenette, 10 ImageNet classes, 160 px).

With ``root`` set, a local class-per-folder copy is read like
:mod:`levyjepa.data.images.image_folder` (``root/train`` and ``root/val``; a local Imagenette 160 px
copy is one). With ``root`` null, the Hugging Face hub dataset the seed used is loaded:
``frgfm/imagenette``, configuration ``160px``, splits ``train`` (9,469 images) and ``validation``
(3,925), through ``datasets.load_dataset`` (the optional extra ``pip install 'levyjepa[hub]'``). The
dataset is defined by a loading script, which ``datasets`` 4 no longer runs; 2.14 to 3.x work.
Images are decoded one at a time when an item is read; one that does not decode is skipped or stops
the run as ``on_error`` says (as for ``image_folder``, :mod:`levyjepa.data.loading.skipped_files`).
"""

from __future__ import annotations

import re
from typing import Any, Optional

from levyjepa.data.images.image_folder import image_folder
from levyjepa.data.images.image_splits import image_splits
from levyjepa.data.images.lazy_images import HubImages
from levyjepa.data.loading.skipped_files import check_on_error
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.views.augment_on import check_augment_on, place_augmentation
from levyjepa.errors import ConfigError
from levyjepa.registry import DATA

HUB_DATASET = "frgfm/imagenette"
HUB_CONFIG = "160px"
HUB_TRAIN_SPLIT = "train"
HUB_TEST_SPLIT = "validation"


def load_hub_split(split: str) -> Any:
    """``datasets.load_dataset("frgfm/imagenette", "160px", split=split)``, imported lazily.

    Raises:
        ConfigError: when ``datasets`` is not installed or the hub cannot be reached, telling
            how to install it or to set ``data.root`` instead.
    """
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            f"data: imagenette with root=null loads the Hugging Face dataset {HUB_DATASET} and "
            "needs the 'datasets' package: pip install 'levyjepa[hub]', or set data.root to a "
            "local copy (train/ and val/ class folders)"
        ) from None
    kwargs: dict[str, Any] = {}
    major_minor = tuple(int(x) for x in re.findall(r"\d+", datasets.__version__)[:2])
    if (2, 16) <= major_minor < (4, 0):  # the dataset is a loading script: allow it to run
        kwargs["trust_remote_code"] = True
    try:
        return datasets.load_dataset(HUB_DATASET, HUB_CONFIG, split=split, **kwargs)
    except Exception as err:  # network, hub and script errors come in many types
        first = (str(err).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"data: could not load {HUB_DATASET} ({HUB_CONFIG}, split {split}) with datasets "
            f"{datasets.__version__}: {type(err).__name__}: {first}; set data.root to a local "
            "copy (train/ and val/ class folders)"
        ) from err


def hub_num_classes(dataset: Any, labels: list[int], *, column: str = "label") -> int:
    """Number of classes from the dataset's ``ClassLabel`` feature (else the largest label + 1)."""
    feature = getattr(dataset, "features", {}).get(column)
    count = getattr(feature, "num_classes", None)
    return int(count) if count else max(labels) + 1


@DATA.register("imagenette")
def imagenette(
    *,
    root: Optional[str] = None,
    size: int = 128,
    views: int = 4,
    seed: int = 0,
    crop_scale: tuple[float, float] = (0.08, 1.0),
    color_jitter: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 0.2),
    color_jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
    blur_kernel: int = 7,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    blur_p: float = 0.5,
    solarize_threshold: int = 128,
    solarize_p: float = 0.1,
    flip_p: float = 0.5,
    augment_on: str = "cpu",
    load_size: int = 160,
    cache: bool = False,
    on_error: str = "skip",
) -> DataSplits:
    """Imagenette with the seed's views, from a local tree or from the Hugging Face hub.

    Args:
        root: Local copy (``train/`` and ``val/`` class folders); ``None`` loads
            ``frgfm/imagenette`` (``160px``) from the hub.
        size: Side of every view in pixels.
        views: Training views per image (``V``).
        seed: Seed of the augmentation (drawn per epoch and item).
        crop_scale: Area range of the random resized crop.
        color_jitter: Brightness, contrast, saturation and hue strengths.
        color_jitter_p: Probability of the colour jitter.
        grayscale_p: Probability of grayscale.
        blur_kernel: Gaussian blur kernel side.
        blur_sigma: Gaussian blur standard deviation range.
        blur_p: Probability of the blur.
        solarize_threshold: Solarisation threshold (0-255).
        solarize_p: Probability of solarisation.
        flip_p: Probability of a horizontal flip.
        augment_on: Where the training views are made: ``cpu`` (loader workers) or ``device``
            (the loader yields uint8 images of ``load_size`` px, the training device makes
            the views; :mod:`levyjepa.data.views.augment_on`).
        load_size: Side of the uint8 images the loader yields with ``augment_on: device``.
        cache: Hold the encoded files of ``root`` in memory (with ``root`` null the hub's
            Arrow files are memory-mapped already, and ``cache`` is refused).
        on_error: ``skip`` (warn, count in ``data/skipped_files``, read the next image) or
            ``raise`` (stop with one line naming the file) for images that do not decode.
    """
    check_augment_on(augment_on, load_size)
    check_on_error(on_error)
    augmentation = dict(
        crop_scale=crop_scale, color_jitter=color_jitter, color_jitter_p=color_jitter_p,
        grayscale_p=grayscale_p, blur_kernel=blur_kernel, blur_sigma=blur_sigma, blur_p=blur_p,
        solarize_threshold=solarize_threshold, solarize_p=solarize_p, flip_p=flip_p,
    )
    if root is not None:
        return image_folder(root=root, size=size, views=views, seed=seed, augment_on=augment_on,
                            load_size=load_size, cache=cache, on_error=on_error,
                            **augmentation)
    if cache:
        raise ConfigError("data.cache needs data.root (the hub dataset is memory-mapped already)")
    train = load_hub_split(HUB_TRAIN_SPLIT)
    test = load_hub_split(HUB_TEST_SPLIT)
    train_labels = [int(y) for y in train["label"]]
    test_labels = [int(y) for y in test["label"]]
    splits = image_splits(  # an image is named in messages as '<dataset> <split> item <i>'
        train=(HubImages(train, name=f"{HUB_DATASET} {HUB_TRAIN_SPLIT}"), train_labels),
        test=(HubImages(test, name=f"{HUB_DATASET} {HUB_TEST_SPLIT}"), test_labels),
        num_classes=hub_num_classes(train, train_labels), size=size, views=views, seed=seed,
        augmentation=augmentation, on_error=on_error,
    )
    return place_augmentation(splits, augment_on=augment_on, load_size=load_size, size=size,
                              views=views, seed=seed, augmentation=augmentation)
