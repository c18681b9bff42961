"""Training, ``train_eval`` and test splits of an image source, from a view pipeline's transforms.

A view pipeline (:mod:`levyjepa.data.views.seed_views`, :mod:`levyjepa.data.views.light_views`)
chooses the transforms; this module wraps the source's labelled images with them: ``V`` global
views (and ``L`` local views with multi-crop) per training item, seeded per ``(seed, epoch,
index)`` (:class:`~levyjepa.data.views.multi_view.MultiViewDataset`), and one deterministic test
view of every training and test image. With views made on the device the training items are
the decoded 8-bit images instead, and a :class:`~levyjepa.data.views.device_views.DeviceViews`
makes the views of every batch where the model is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Optional

import torch
from torch import nn

from levyjepa.core.errors import ConfigError
from levyjepa.data.images.fixed_size_images import FixedSizeImages
from levyjepa.data.loading.image_source import ImageSource
from levyjepa.data.loading.skipped_files import SkipsUnreadableFiles
from levyjepa.data.loading.splits import DataSplits, ViewGroups
from levyjepa.data.views.multi_view import MultiViewDataset, TransformedDataset

Transform = Callable[[torch.Tensor], torch.Tensor]


def check_groups(*, global_views: int, global_size: Optional[int],
                 global_scale: Sequence[float], local_views: int, local_size: int,
                 local_scale: Sequence[float]) -> None:
    """Refuse bad view counts, sides and crop scales, naming the ``views.*`` key.

    Raises:
        ConfigError: one line naming the key and its valid range.
    """
    counts = [("global_views", global_views, 1), ("local_views", local_views, 0),
              ("local_size", local_size, 1)]
    if global_size is not None:
        counts.append(("global_size", global_size, 1))
    for key, value, low in counts:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"views.{key} must be an integer >= {low}, got {value!r}")
    for key, scale in (("global_scale", global_scale), ("local_scale", local_scale)):
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ConfigError(f"views.{key} must be [low, high] with 0 < low <= high <= 1, got "
                              f"{list(scale)}")


def view_groups(global_views: int, global_size: int, local_views: int, local_size: int
                ) -> ViewGroups:
    """``((G, global_size),)``, plus ``(L, local_size)`` when there are local views."""
    groups = ((global_views, global_size),)
    return (*groups, (local_views, local_size)) if local_views else groups


def cpu_view_splits(source: ImageSource, *, transform: Transform, views: int, seed: int,
                    test_transform: Transform, local_transform: Optional[Transform] = None,
                    local_views: int = 0, groups: ViewGroups) -> DataSplits:
    """Splits whose training items are made in the loader workers, one image at a time.

    Args:
        source: The source's labelled images.
        transform: Augmentation of one global view.
        views: Global views ``G`` per training item.
        seed: Base seed of the per-(epoch, item) augmentation.
        test_transform: The deterministic view of ``train_eval`` and ``test`` items.
        local_transform: Augmentation of one local view (with ``local_views``).
        local_views: Local views ``L`` per training item (0: none).
        groups: The views' geometry, recorded as ``DataSplits.view_groups``.
    """
    images, labels = source.train
    train = MultiViewDataset(images, labels, transform=transform, views=views, seed=seed,
                             on_error=source.on_error, local_transform=local_transform,
                             local_views=local_views)
    train_eval = TransformedDataset(images, labels, transform=test_transform,
                                    on_error=source.on_error)
    train_eval.share_unreadable(train)  # the same files: each skipped one reported once
    test = None
    if source.test is not None:
        test = TransformedDataset(source.test.images, source.test.labels,
                                  transform=test_transform, on_error=source.on_error)
    return DataSplits(train=train, test=test, num_classes=source.num_classes,
                      train_eval=train_eval, view_groups=groups)


def device_view_splits(splits: DataSplits, source: ImageSource, *, load_size: int,
                       device_views: nn.Module) -> DataSplits:
    """``splits`` with uint8 training images of ``load_size`` px and device-made views."""
    train = FixedSizeImages(source.train.images, source.train.labels, size=load_size,
                            on_error=source.on_error)
    if isinstance(splits.train_eval, SkipsUnreadableFiles):  # the same files
        train.share_unreadable(splits.train_eval)
    return dataclasses.replace(splits, train=train, device_views=device_views)
