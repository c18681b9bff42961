"""``image_shards``: images in local tar shards (the WebDataset layout), read by offset.

Shards are written by ``python -m levyjepa.data.shards SRC OUT`` (:mod:`levyjepa.data.shards`)
or by any WebDataset tool: a sample is the members sharing a key, its image the member named
``<key>.jpg`` (or ``jpeg``, ``png``, ``webp``, ... ; ``data.image_key`` picks one) and its label
the integer in ``<key>.cls`` (``data.label_key``; ``-1``, unknown, without one). The class
names, and so the number of classes, come from ``classes.json`` beside the shards (the writer
puts it there, in the class order of ``image_folder``); without it the number of classes is the
largest label plus one.

``data.root`` names the training shards: a folder (its ``train-*.tar``, the writer's names, or
every ``*.tar`` when none is so named), a brace pattern (``/data/in1k/train-{000000..001023}.tar``)
or a list. ``data.test_root`` names the test shards likewise; left null with a folder
``root``, the folder's ``val-*.tar`` shards are the test split when there are any.

Every item is one image, decoded when read exactly as ``image_folder`` decodes its files
(:mod:`levyjepa.data.images.lazy_images`), so shards written from a folder give that folder's
items, labels and views, item for item. The index of the samples (where each image's bytes are
in its shard) is read from the tar headers when the source is built; an item is one read at
its offset, through a file each loader worker opens itself. Determinism, once-per-epoch
coverage across processes and loader workers and exact mid-epoch resume are those of every
map-style source (the epoch-seeded sampler, Accelerate's batch slicing, per-item seeded views).
An image that does not decode, or whose bytes a truncated shard cut off, is skipped and counted
in ``data/skipped_files`` or stops the run, as ``data.on_error`` says; a shard that does not
open, or ends early, is reported when the source is built
(:mod:`levyjepa.data.shards.tar_index`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

from PIL import Image

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA
from levyjepa.data.images.lazy_images import UnreadableImage, _LastItemCache, decode_rgb
from levyjepa.data.loading.image_source import ImageSource, labelled
from levyjepa.data.loading.skipped_files import check_on_error
from levyjepa.data.shards.tar_index import (
    ShardSamples,
    expand_shards,
    index_shards,
    read_classes,
)

IMAGE_FIELDS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
"""Extensions read as a sample's image when ``data.image_key`` is null, the first one present."""


class ShardImages(_LastItemCache):
    """The images of indexed shards, read by offset and converted to RGB on access.

    Args:
        samples: The index of the shards' samples (their images are the main field).
    """

    def __init__(self, samples: ShardSamples) -> None:
        super().__init__()
        self.samples = samples

    @property
    def paths(self) -> list[str]:
        """The shard files (messages name their folder)."""
        return self.samples.paths

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> Image.Image:
        data = self.samples.read(index, UnreadableImage)
        return decode_rgb(io.BytesIO(data), self.samples.describe(index))


def shard_split(spec: Union[str, Sequence[str]], *, key: str, prefix: Optional[str],
                exclude: Optional[str], image_key: Optional[str], label_key: Optional[str],
                on_error: str) -> tuple[ShardImages, list[int], Optional[list[str]]]:
    """One split: its images, their labels and the class names beside its shards (if any)."""
    shards = expand_shards(spec, key=key, prefix=prefix, exclude=exclude)
    wanted = (image_key,) if image_key else IMAGE_FIELDS
    samples = index_shards(shards, wanted=wanted, label_key=label_key, on_error=on_error,
                           key=key)
    return ShardImages(samples), samples.labels.tolist(), read_classes(shards)


@DATA.register("image_shards")
def image_shards(
    *,
    root: Union[str, list[str], None] = None,
    test_root: Union[str, list[str], None] = None,
    train_split: str = "train",
    test_split: Optional[str] = "val",
    image_key: Optional[str] = None,
    label_key: Optional[str] = "cls",
    on_error: str = "skip",
) -> ImageSource:
    """Natural images from local tar shards (their views: the ``views`` section).

    Args:
        root: The training shards: a folder, a brace pattern or a list of shards.
        test_root: The test shards likewise, or ``None`` (a folder ``root``'s
            ``<test_split>-*.tar`` shards, if any).
        train_split: In a folder, the training shards are named ``<train_split>-*.tar``
            (every ``*.tar`` not named ``<test_split>-*`` when none is).
        test_split: In a folder, the test shards are named ``<test_split>-*.tar`` (``None``:
            no evaluation unless ``test_root`` is set).
        image_key: The image member's extension (``jpg``); ``None`` takes the first of
            :data:`IMAGE_FIELDS` each sample has.
        label_key: The label member's extension (an integer as text); ``None``: unlabelled.
        on_error: ``skip`` (report, count in ``data/skipped_files``, read the next image) or
            ``raise`` (stop with one line naming the shard and member) for images that do not
            decode or were cut off, and for damaged shards.

    Returns:
        The images, decoded one at a time when read, and their labels.

    Raises:
        ConfigError: naming the key at fault (a missing shard or folder, no samples, a test
            split with labels the training split does not have).
    """
    check_on_error(on_error)
    if root is None:
        raise ConfigError("data.root: set data.root to a folder of *.tar shards, a pattern "
                          "such as train-{000000..000009}.tar or a list of shards")
    split = dict(image_key=image_key, label_key=label_key, on_error=on_error)
    images, labels, classes = shard_split(root, key="data.root", prefix=train_split,
                                          exclude=test_split, **split)
    test = None
    test_spec = test_root
    if test_spec is None and test_split is not None and isinstance(root, str):
        folder = Path(root).expanduser()  # a folder root: its <test_split>-*.tar, if any
        named = sorted(folder.glob(f"{test_split}-*.tar")) if folder.is_dir() else []
        test_spec = [str(p) for p in named] or None
    if test_spec is not None:
        test_images, test_labels, _ = shard_split(test_spec, key="data.test_root",
                                                  prefix=test_split, exclude=None, **split)
        test = labelled(test_images, test_labels)
    num_classes = len(classes) if classes else max(labels, default=-1) + 1
    if test is not None and num_classes and int(test.labels.max()) >= num_classes:
        raise ConfigError(f"data.test_root: a test label {int(test.labels.max())} is not one of "
                          f"the {num_classes} classes of the training shards")
    return ImageSource(train=labelled(images, labels), test=test, num_classes=num_classes,
                       on_error=on_error)
