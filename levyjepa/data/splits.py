"""What a data source returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch.utils.data import Dataset


@dataclass
class DataSplits:
    """The datasets of one data source.

    Attributes:
        train: Items ``(views, label)``: ``views`` float ``(V, C, H, W)`` (or ``(V, C, T, H, W)``
            for clips), ``label`` an int (``-1`` when unlabelled). Exposes ``set_epoch(epoch)``
            when its augmentation depends on the epoch.
        test: Items ``(image, label)`` with one un-augmented view ``(C, H, W)``, or ``None``.
        num_classes: Number of classes (0 for unlabelled data: no probe is trained).
        train_eval: The training items as the test split presents its items, ``(image,
            label)`` with one un-augmented view (the test transform), or ``None`` when the
            source does not provide it; read by offline evaluation (:mod:`levyjepa.eval`),
            never by training.
    """

    train: Dataset
    test: Optional[Dataset]
    num_classes: int
    train_eval: Optional[Dataset] = None
