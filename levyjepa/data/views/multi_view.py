"""Multi-view datasets with reproducible augmentation.

The random augmentation of item ``i`` in epoch ``e`` is drawn from a generator seeded by
``(seed, e, i)``, not from a global random stream. A run therefore sees the same views whatever
the number of loader workers or processes, and a run resumed mid-epoch sees exactly the views
the uninterrupted run would have seen.

Items read from files (``on_error`` set) follow :mod:`levyjepa.data.loading.skipped_files`: an
unreadable image is skipped (``skip``: replaced by the next readable item, with the
augmentation of the original index) or stops the run (``raise``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional, Union

import torch
from torch.utils.data import Dataset

from levyjepa.data.loading.skipped_files import SkipsUnreadableFiles

Views = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]
"""A training item's views: ``(V, C, H, W)``, or ``(global, local)`` with local views."""


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed unique to ``(seed, epoch, index)`` (splitmix64-style mixing)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB)
    x &= (1 << 64) - 1
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    x ^= x >> 29
    return x & ((1 << 63) - 1)


class MultiViewDataset(SkipsUnreadableFiles, Dataset):
    """``V`` independently augmented views of every item of a labelled image dataset.

    With ``local_views`` (multi-crop) an item also has ``L`` local views: its views are the pair
    ``(global (V, C, H, W), local (L, C, h, w))``. The global views are drawn first, then the
    local ones, from the item's one seed, so the global views are those of the same dataset
    without local views.

    Args:
        images: Indexable of images (e.g. a uint8 tensor ``(n, C, H, W)``).
        labels: Their labels (``-1`` for unlabelled items).
        transform: Augmentation applied to one image (uses the global torch RNG, which is
            seeded per item here).
        views: Number of (global) views ``V``.
        seed: Base seed of the augmentation.
        on_error: ``skip`` or ``raise`` for images that do not decode (files); ``None`` for
            in-memory images, which cannot fail (no ``data/skipped_files`` metric).
        local_transform: Augmentation of a local view (needed when ``local_views > 0``).
        local_views: Number of local views ``L`` (0: none, items are ``(views, label)``).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        transform: Callable[[torch.Tensor], torch.Tensor],
        views: int,
        seed: int,
        on_error: Optional[str] = None,
        local_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        local_views: int = 0,
    ) -> None:
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        if local_views < 0:
            raise ValueError(f"local_views must be >= 0, got {local_views}")
        if local_views and local_transform is None:
            raise ValueError("local_views > 0 needs a local_transform")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels
        self.transform, self.views, self.seed = transform, views, seed
        self.local_transform, self.local_views = local_transform, local_views
        self.track_unreadable(len(images), on_error, noun="image", files=images)
        # in shared memory, so that persistent loader workers see the epoch the loop sets
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    epoch_in_shared_memory = True
    """``set_epoch`` reaches loader workers started earlier (persistent workers are safe)."""

    @property
    def epoch(self) -> int:
        """The epoch whose augmentation ``__getitem__`` draws."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation ``__getitem__`` draws (in every worker)."""
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Views, int]:
        return self.read_readable(index, lambda item: self._views(item, seed_index=index))

    def _views(self, item: int, *, seed_index: int) -> tuple[Views, int]:
        """The views of image ``item`` with the augmentation of ``seed_index`` in this epoch."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, self.epoch, seed_index))
            views = torch.stack([self.transform(self.images[item]) for _ in range(self.views)])
            if self.local_views:
                assert self.local_transform is not None
                local = torch.stack([self.local_transform(self.images[item])
                                     for _ in range(self.local_views)])
                return (views, local), int(self.labels[item])
        return views, int(self.labels[item])


class TransformedDataset(SkipsUnreadableFiles, Dataset):
    """Deterministic transform of every item (the test split).

    Args:
        images: Indexable of images.
        labels: Their labels.
        transform: Deterministic transform of one image.
        on_error: ``skip``, ``raise`` or ``None``, as for :class:`MultiViewDataset`.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        transform: Callable[[torch.Tensor], torch.Tensor],
        on_error: Optional[str] = None,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.transform = images, labels, transform
        self.track_unreadable(len(images), on_error, noun="image", files=images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.read_readable(
            index, lambda item: (self.transform(self.images[item]), int(self.labels[item])))
