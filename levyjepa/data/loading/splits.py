"""What the training loop reads: the datasets of a run and the geometry of their views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import nn
from torch.utils.data import Dataset

ViewGroups = tuple[tuple[int, int], ...]
"""``((views, side), ...)``: the global group first, then the local one when there is one."""


@dataclass
class DataSplits:
    """The datasets of one data source (and, for images, of the recipe's ``views`` section).

    Attributes:
        train: Items ``(views, label)``: ``views`` float ``(V, C, H, W)`` (or ``(V, C, T, H, W)``
            for clips), ``label`` an int (``-1`` when unlabelled). With two view groups
            (multi-crop) ``views`` is the pair ``(global (G, C, Hg, Wg), local (L, C, Hl, Wl))``,
            which the default collate turns into a pair of batched tensors. Exposes
            ``set_epoch(epoch)`` when its augmentation depends on the epoch.
        test: Items ``(image, label)`` with one un-augmented view ``(C, H, W)``, or ``None``.
        num_classes: Number of classes (0 for unlabelled data: no probe is trained).
        train_eval: The training items as the test split presents its items, ``(image,
            label)`` with one un-augmented view (the test transform), or ``None`` when the
            source does not provide it; read by offline evaluation (:mod:`levyjepa.eval`),
            never by training.
        device_views: When set, ``train`` items are ``(image, label)`` with one uint8 image
            ``(C, H, W)`` of a fixed size, and this module (moved to the training device) makes
            the views of every batch there: ``device_views(images, step=..., rank=...)`` maps
            ``(N, C, H, W)`` uint8 to ``(N, V, C, H', W')`` float, or to the pair ``(global,
            local)`` with two view groups (see
            :class:`levyjepa.data.views.device_views.DeviceViews`).
        view_groups: ``((G, global_side),)`` or ``((G, global_side), (L, local_side))``: the
            views per item and their side in pixels, per group. Empty when a source does not
            say; :func:`levyjepa.data.build.build_splits` then reads it off the first item.
    """

    train: Dataset
    test: Optional[Dataset]
    num_classes: int
    train_eval: Optional[Dataset] = None
    device_views: Optional[nn.Module] = None
    view_groups: ViewGroups = ()
