"""What an image data source returns: plain labelled images, no views.

An image data source (``image_folder``, ``imagenette``, ``synthetic_shapes``, ``scenes``) says
where images come from; the recipe's ``views`` section says how training views are made of them
(:mod:`levyjepa.data.views`). :func:`levyjepa.data.build.build_splits` applies the one to the
other and returns the :class:`~levyjepa.data.loading.splits.DataSplits` the loop reads. A
source registered with the return annotation ``-> ImageSource`` is known to be an image source
when a recipe is checked, before anything is built (its recipe then needs a ``views`` section).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import torch


class LabelledImages(NamedTuple):
    """Images and their labels, one split of an image source.

    Attributes:
        images: Indexable of images: PIL images decoded on access (files, the hub) or a uint8
            tensor ``(n, 3, H, W)`` (generated, in memory).
        labels: int64 ``(n,)`` labels (``-1`` for unlabelled items).
    """

    images: Sequence[Any] | torch.Tensor
    labels: torch.Tensor


@dataclass
class ImageSource:
    """The un-augmented labelled images of an image data source.

    Attributes:
        train: The training images.
        test: The test images, or ``None`` (no evaluation).
        num_classes: Number of classes (0 for unlabelled data).
        image_size: Side of every image when the source makes images of one size (generated
            sources: ``data.size``), ``None`` when sizes vary (natural images); the ``light``
            views default to it.
        on_error: ``skip`` or ``raise`` for images that do not decode (files), ``None`` for
            in-memory images, which cannot fail (:mod:`levyjepa.data.loading.skipped_files`).
    """

    train: LabelledImages
    test: Optional[LabelledImages]
    num_classes: int
    image_size: Optional[int] = None
    on_error: Optional[str] = None


def labelled(images: Sequence[Any] | torch.Tensor, labels: Sequence[int] | torch.Tensor
             ) -> LabelledImages:
    """``LabelledImages`` with the labels as an int64 tensor."""
    return LabelledImages(images, torch.as_tensor(labels, dtype=torch.int64))
