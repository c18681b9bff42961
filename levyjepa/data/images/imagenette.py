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

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA
from levyjepa.data.images.image_folder import image_folder
from levyjepa.data.images.lazy_images import HubImages
from levyjepa.data.loading.image_source import ImageSource, labelled
from levyjepa.data.loading.skipped_files import check_on_error

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
    cache: bool = False,
    on_error: str = "skip",
) -> ImageSource:
    """Imagenette, from a local tree or from the Hugging Face hub (views: the ``views`` section).

    Args:
        root: Local copy (``train/`` and ``val/`` class folders); ``None`` loads
            ``frgfm/imagenette`` (``160px``) from the hub.
        cache: Hold the encoded files of ``root`` in memory (with ``root`` null the hub's
            Arrow files are memory-mapped already, and ``cache`` is refused).
        on_error: ``skip`` (report, count in ``data/skipped_files``, read the next image) or
            ``raise`` (stop with one line naming the file) for images that do not decode.

    Returns:
        The images, decoded one at a time when read, and their labels.
    """
    check_on_error(on_error)
    if root is not None:
        return image_folder(root=root, cache=cache, on_error=on_error)
    if cache:
        raise ConfigError("data.cache needs data.root (the hub dataset is memory-mapped already)")
    train = load_hub_split(HUB_TRAIN_SPLIT)
    test = load_hub_split(HUB_TEST_SPLIT)
    train_labels = [int(y) for y in train["label"]]
    test_labels = [int(y) for y in test["label"]]
    return ImageSource(  # an image is named in messages as '<dataset> <split> item <i>'
        train=labelled(HubImages(train, name=f"{HUB_DATASET} {HUB_TRAIN_SPLIT}"), train_labels),
        test=labelled(HubImages(test, name=f"{HUB_DATASET} {HUB_TEST_SPLIT}"), test_labels),
        num_classes=hub_num_classes(train, train_labels), on_error=on_error,
    )
