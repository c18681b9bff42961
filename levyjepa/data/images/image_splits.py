"""Natural-image splits with the seed's views: ``V`` augmented training views, one test view.

Every split (training, test and ``train_eval``) applies ``on_error`` to images that do not
decode (:mod:`levyjepa.data.loading.skipped_files`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
from PIL import Image

from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.views.multi_view import MultiViewDataset, TransformedDataset
from levyjepa.data.views.transforms import center_view, ssl_augmentation


def image_splits(
    *,
    train: tuple[Sequence[Image.Image], Sequence[int]],
    test: Optional[tuple[Sequence[Image.Image], Sequence[int]]],
    num_classes: int,
    size: int,
    views: int,
    seed: int,
    augmentation: Mapping[str, Any],
    on_error: str = "skip",
) -> DataSplits:
    """Wrap lazily decoded images and their labels into :class:`DataSplits`.

    Args:
        train: Training images (indexable, decoded on access) and their labels.
        test: Test images and labels, or ``None`` (no evaluation).
        num_classes: Number of classes.
        size: Side of every view.
        views: Training views per image (``V``).
        seed: Seed of the per-(epoch, item) augmentation.
        augmentation: Keyword arguments of :func:`levyjepa.data.views.transforms.ssl_augmentation`.
        on_error: ``skip`` or ``raise`` for images that do not decode, in every split.

    Returns:
        Training items ``(views (V, 3, size, size), label)``, test items and un-augmented
        training items (``train_eval``) ``(image (3, size, size), label)``, float and
        ImageNet-normalised.
    """
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    transform = ssl_augmentation(size, **_tuples(augmentation))
    train_set = MultiViewDataset(train[0], torch.as_tensor(train[1], dtype=torch.int64),
                                 transform=transform, views=views, seed=seed, on_error=on_error)
    train_eval = TransformedDataset(train[0], train_set.labels, transform=center_view(size),
                                    on_error=on_error)
    test_set = None
    if test is not None:
        test_set = TransformedDataset(test[0], torch.as_tensor(test[1], dtype=torch.int64),
                                      transform=center_view(size), on_error=on_error)
    return DataSplits(train=train_set, test=test_set, num_classes=num_classes,
                      train_eval=train_eval)


def _tuples(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Recipe lists (``crop_scale: [0.08, 1.0]``) as the tuples torchvision expects."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
