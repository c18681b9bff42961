"""Unreadable data files: skip them (``data.on_error: skip``) or stop (``raise``); their count.

Every file-backed dataset (the clips of :class:`levyjepa.data.video.video_clips.ClipDataset`, the
images of :class:`levyjepa.data.views.multi_view.MultiViewDataset`,
:class:`levyjepa.data.views.multi_view.TransformedDataset` and
:class:`levyjepa.data.images.fixed_size_images.FixedSizeImages`) reads its items through
:class:`SkipsUnreadableFiles`, one policy for all of them:

- a file that cannot be decoded raises a :class:`levyjepa.errors.UnreadableFile` naming the file
  and the cause (:class:`levyjepa.data.video.video_sources.UnreadableVideo`,
  :class:`levyjepa.data.images.lazy_images.UnreadableImage`);
- with ``on_error="raise"`` that error propagates: a :class:`levyjepa.errors.ConfigError`, so the
  command line prints one line naming the file and exits with status 2, also when the error
  was raised in a loader worker;
- with ``on_error="skip"`` the file is reported with a ``RuntimeWarning`` naming it, marked in
  ``dataset.unreadable`` and the item is replaced by the next readable one (wrapping around),
  made with the randomness of the *original* index. The batch size is unchanged, every other
  item is exactly what it would be without the damaged file, and a resumed run (new processes,
  no flags yet) sees the same items as an uninterrupted one.

``unreadable`` is a 0/1 tensor per item in shared memory, written by the loader workers. The
training loop logs the number of distinct unreadable files met so far as ``data/skipped_files``
(:func:`skipped_files_metric`; each process has its own flags, combined with an element-wise
maximum across processes, so a file met by several processes counts once).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Optional, TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from levyjepa.dist import world_size
from levyjepa.errors import UnreadableFile

ON_ERROR = ("skip", "raise")
"""What a dataset does with an unreadable file (``data.on_error``)."""

T = TypeVar("T")


def check_on_error(on_error: object) -> None:
    """Refuse an ``on_error`` that is not one of :data:`ON_ERROR` (a one-line ``ValueError``)."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}")


class SkipsUnreadableFiles:
    """Mixin of datasets whose items are read from files that may not decode.

    A dataset calls :meth:`track_unreadable` in its constructor and reads every item through
    :meth:`read_readable`. Without ``track_unreadable`` (or with ``on_error=None``: in-memory
    items that cannot fail) items are read directly and ``unreadable`` is ``None``, so no
    ``data/skipped_files`` metric is logged.
    """

    unreadable: Optional[torch.Tensor] = None
    """0/1 per item, in shared memory: the files found unreadable (``None``: not tracked)."""
    on_error: Optional[str] = None
    """``skip`` or ``raise`` (``None``: not tracked)."""
    unreadable_noun: str = "file"
    """What an item's file is, in warnings (``image``, ``video``)."""

    def track_unreadable(self, size: int, on_error: Optional[str], *, noun: str = "file") -> None:
        """Apply the ``on_error`` policy to the ``size`` items (``None``: they cannot fail).

        Raises:
            ValueError: for an ``on_error`` not in :data:`ON_ERROR`.
        """
        if on_error is None:
            return
        check_on_error(on_error)
        self.on_error, self.unreadable_noun = on_error, noun
        self.unreadable = torch.zeros(size, dtype=torch.uint8).share_memory_()

    @property
    def skipped_files(self) -> int:
        """Number of distinct files found unreadable so far (by any worker of this process)."""
        return 0 if self.unreadable is None else int(self.unreadable.sum())

    def read_readable(self, index: int, load: Callable[[int], T]) -> T:
        """``load(item)`` for ``item = index``, or for the next readable item when skipping.

        ``load`` gets the item whose file it reads; it must draw its randomness from ``index``
        (the caller's), not from ``item``.

        Raises:
            UnreadableFile: with ``on_error="raise"``, the file's error; with ``skip``, when no
                file at all can be read.
        """
        flags = self.unreadable
        if flags is None:
            return load(index)
        n = len(flags)
        for offset in range(n):
            item = (index + offset) % n
            if flags[item]:
                continue
            try:
                return load(item)
            except UnreadableFile as err:
                if self.on_error == "raise":
                    raise
                flags[item] = 1
                warnings.warn(f"skipping unreadable {self.unreadable_noun} "
                              f"({self.skipped_files} so far): {err}", RuntimeWarning,
                              stacklevel=3)
        raise UnreadableFile(f"none of the {n} {self.unreadable_noun}s can be read "
                             "(data.on_error=skip skipped every one)")


def skipped_files_metric(dataset: Dataset, *, device: torch.device) -> dict[str, float]:
    """``{"data/skipped_files": count}``, or ``{}`` for datasets that never skip files.

    A collective operation when distributed: call it on every process.

    Args:
        dataset: The training dataset.
        device: The process's device (the all-reduce runs there).
    """
    flags = getattr(dataset, "unreadable", None)
    if not isinstance(flags, torch.Tensor):
        return {}
    flags = flags.to(device=device, dtype=torch.int32)
    if world_size() > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return {"data/skipped_files": float(flags.sum())}
