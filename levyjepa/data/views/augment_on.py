"""``data.augment_on``: make the training views in the loader workers or on the training device.

``cpu`` (the default) keeps the per-image torchvision pipeline in the loader workers. ``device``
turns the training split into decoded 8-bit images of ``load_size`` px and attaches a
:class:`levyjepa.data.views.device_views.DeviceViews` that the training loop runs on every batch
where the model is: the workers only decode, the GPU makes the views.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from levyjepa.data.images.fixed_size_images import FixedSizeImages
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.views.device_views import DeviceViews
from levyjepa.errors import ConfigError

AUGMENT_ON = ("cpu", "device")
"""Valid values of ``data.augment_on``."""


def check_augment_on(augment_on: str, load_size: int) -> None:
    """Refuse an unknown ``augment_on`` or a non-positive ``load_size`` (one-line errors)."""
    if augment_on not in AUGMENT_ON:
        raise ConfigError(f"data.augment_on must be one of {', '.join(AUGMENT_ON)}, "
                          f"got {augment_on!r}")
    if isinstance(load_size, bool) or not isinstance(load_size, int) or load_size < 1:
        raise ConfigError(f"data.load_size must be a positive integer, got {load_size!r}")


def place_augmentation(
    splits: DataSplits,
    *,
    augment_on: str,
    load_size: int,
    size: int,
    views: int,
    seed: int,
    augmentation: Mapping[str, Any],
) -> DataSplits:
    """Return ``splits`` as they are (``cpu``) or with device-made training views (``device``).

    Args:
        splits: Splits whose training set is a
            :class:`levyjepa.data.views.multi_view.MultiViewDataset` (its ``images``, ``labels`` and
            ``on_error`` are reused).
        augment_on: ``"cpu"`` or ``"device"``.
        load_size: Side of the uint8 images the loader yields with ``device``.
        size: Side of every view.
        views: Views ``V`` per image.
        seed: Base seed of the device views.
        augmentation: Keyword arguments of :func:`levyjepa.data.views.transforms.ssl_augmentation`.

    Raises:
        ConfigError: for an unknown ``augment_on`` or a bad ``load_size``.
    """
    check_augment_on(augment_on, load_size)
    if augment_on == "cpu":
        return splits
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in augmentation.items()}
    train = FixedSizeImages(splits.train.images, splits.train.labels, size=load_size,
                            on_error=splits.train.on_error)
    return dataclasses.replace(
        splits, train=train,
        device_views=DeviceViews(size=size, views=views, seed=seed, **kwargs),
    )
