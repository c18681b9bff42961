"""Unreadable data files: skip them (``data.on_error: skip``) or stop (``raise``); their count.

Every file-backed dataset (the clips of :class:`levyjepa.data.video.video_clips.ClipDataset`, the
images of :class:`levyjepa.data.views.multi_view.MultiViewDataset`,
:class:`levyjepa.data.views.multi_view.TransformedDataset` and
:class:`levyjepa.data.images.fixed_size_images.FixedSizeImages`) reads its items through
:class:`SkipsUnreadableFiles`, one policy for all of them:

- a file that cannot be decoded raises a :class:`levyjepa.core.errors.UnreadableFile` naming the
  file and the cause (:class:`levyjepa.data.video.video_sources.UnreadableVideo`,
  :class:`levyjepa.data.images.lazy_images.UnreadableImage`);
- with ``on_error="raise"`` that error propagates: a :class:`levyjepa.core.errors.ConfigError`, so
  the command line prints one line naming the file and exits with status 2, also when the error
  was raised in a loader worker;
- with ``on_error="skip"`` the file is reported on stderr, one line
  ``levyjepa: skipping unreadable <noun> <file>: <cause>`` (:func:`report_skipped`), marked in
  ``dataset.unreadable`` and the item is replaced by the next readable one (wrapping around),
  made with the randomness of the *original* index. The batch size is unchanged, every other
  item is exactly what it would be without the damaged file, and a resumed run (new processes,
  no flags yet) sees the same items as an uninterrupted one;
- when no file at all can be read, an :class:`~levyjepa.core.errors.UnreadableFile` says so in one
  line (the folder, the number of files tried, the first one and its cause).
  :func:`check_readable` finds that out before training starts, printing nothing else.

``unreadable`` is a 0/1 tensor per item in shared memory, written by the loader workers. The
training loop logs the number of distinct unreadable files met so far as ``data/skipped_files``
(:func:`skipped_files_metric`; each process has its own flags, combined with an element-wise
maximum across processes, so a file met by several processes counts once).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable
from multiprocessing.context import get_spawning_popen
from typing import Any, Optional, TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from levyjepa.core.dist import world_size
from levyjepa.core.errors import UnreadableFile

ON_ERROR = ("skip", "raise")
"""What a dataset does with an unreadable file (``data.on_error``)."""

T = TypeVar("T")

_reported: set[str] = set()
"""The skipped files this process has reported (a forked loader worker starts with a copy)."""


def check_on_error(on_error: object) -> None:
    """Refuse an ``on_error`` that is not one of :data:`ON_ERROR` (a one-line ``ValueError``)."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}")


def report_skipped(noun: str, err: UnreadableFile | str) -> None:
    """Print ``levyjepa: skipping unreadable <noun> <file>: <cause>`` on stderr, once per process.

    A plain line rather than a ``warnings.warn``: Python's warning format adds the caller's
    source line (torch's DataLoader fetch code), two lines per file, and changing the format
    would change it for every warning of the user's process.

    Args:
        noun: What the file is (``image``, ``video``).
        err: The file's error, or its message (which names the file and the cause).
    """
    message = " ".join(str(err).splitlines())
    if message in _reported:
        return
    _reported.add(message)
    if sys.stderr is not None:  # None under pythonw: no console to write to
        sys.stderr.write(f"levyjepa: skipping unreadable {noun} {message}\n")
        sys.stderr.flush()  # a loader worker's line reaches the terminal before its next batch


def files_where(files: Any) -> str:
    """How a message names a collection of files: its folder, its name, or ``the data set``."""
    paths = getattr(files, "paths", None)
    if paths is not None and len(paths):
        paths = [os.fspath(p) for p in paths]
        try:
            common = os.path.commonpath(paths)
        except ValueError:  # absolute and relative paths mixed, or different drives
            common = ""
        if common in paths:  # one file, or all the same: commonpath is the file itself
            common = os.path.dirname(common)
        if common:
            return f"the folder '{common}'"
    name = getattr(files, "name", None)
    return f"'{name}'" if isinstance(name, str) else "the data set"


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
    """What an item's file is, in messages (``image``, ``video``)."""
    unreadable_files: Any = None
    """The collection the items are read from (its ``paths`` name the folder in messages)."""
    _report_lock: Any = None
    """A ``multiprocessing`` lock shared with the loader workers (``None``: not tracked)."""
    _held: Optional[list[tuple[int, str]]] = None
    """While :meth:`check_readable` runs: the items that failed, not flagged nor reported yet."""

    def track_unreadable(self, size: int, on_error: Optional[str], *, noun: str = "file",
                         files: Any = None) -> None:
        """Apply the ``on_error`` policy to the ``size`` items (``None``: they cannot fail).

        Args:
            size: Number of items.
            on_error: ``skip``, ``raise`` or ``None``.
            noun: What an item's file is, in messages.
            files: The collection read (e.g. with ``paths``), to name its folder in messages.

        Raises:
            ValueError: for an ``on_error`` not in :data:`ON_ERROR`.
        """
        if on_error is None:
            return
        check_on_error(on_error)
        self.on_error, self.unreadable_noun, self.unreadable_files = on_error, noun, files
        self.unreadable = torch.zeros(size, dtype=torch.uint8).share_memory_()
        # a spawn-context lock also passes to workers started by "spawn" and "forkserver"
        self._report_lock = multiprocessing.get_context("spawn").Lock()

    def share_unreadable(self, other: SkipsUnreadableFiles) -> None:
        """Use the flags of ``other``, a dataset of the same files (``train_eval`` of ``train``):
        a file found unreadable by one is skipped by the other without being read or reported
        again (their loader workers are different processes)."""
        if (self.unreadable is not None and other.unreadable is not None
                and len(self.unreadable) == len(other.unreadable)):
            self.unreadable, self._report_lock = other.unreadable, other._report_lock

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
        if flags is None or not len(flags):
            return load(index)
        n = len(flags)
        # messages, not errors: an error's traceback would keep this frame and its callers'
        # (a run's loader, with persistent workers) alive until a garbage collection
        met: dict[int, str] = {}
        for offset in range(n):
            item = (index + offset) % n
            if flags[item]:
                continue
            try:
                return load(item)
            except UnreadableFile as err:
                if self.on_error == "raise":
                    raise
                met[item] = str(err)
                self._skip(item, met[item])
        if not met:  # every file flagged by other workers: read one again for its cause
            try:
                return load(0)
            except UnreadableFile as err:
                met[0] = str(err)
        raise UnreadableFile(self._none_readable(n, met[min(met)]))

    def _skip(self, item: int, err: str) -> None:
        """Flag ``item`` and report it (held back while :meth:`check_readable` runs)."""
        if self._held is not None:
            self._held.append((item, err))
            return
        assert self.unreadable is not None
        # another worker may flag it while this one decodes it: check and set under the lock
        # the workers share, so that exactly one of them reports it
        lock = self._report_lock if self._report_lock is not None else contextlib.nullcontext()
        with lock:
            first = not self.unreadable[item]
            self.unreadable[item] = 1
        if first:
            report_skipped(self.unreadable_noun, err)

    def __getstate__(self) -> dict[str, Any]:
        """A loader worker's copy shares the lock (it is handed over as the worker starts); any
        other copy (a pickle, a deep copy) goes without, as a lock cannot be pickled."""
        state = self.__dict__.copy()
        if state.get("_report_lock") is not None and get_spawning_popen() is None:
            state["_report_lock"] = None
        return state

    def _none_readable(self, n: int, first: str) -> str:
        """The one-line message when none of the ``n`` files can be read."""
        noun, where = self.unreadable_noun, files_where(self.unreadable_files)
        tried = "(1 file tried):" if n == 1 else f"({n} files tried); the first:"
        return f"no {noun} in {where} can be read {tried} {first}"

    def check_readable(self) -> None:
        """Read items from the first until one can be read, before training starts.

        When none can, the error is the one line printed (no line per skipped file before it);
        otherwise the files that failed are flagged and reported as the loop would have.

        Raises:
            UnreadableFile: when no file can be read, or (``on_error="raise"``) the first
                item's file cannot.
        """
        if self.unreadable is None:
            return
        held: list[tuple[int, str]] = []
        self._held = held
        try:
            self[0]  # type: ignore[index]  # the dataset's item, read as the loop reads it
        finally:
            self._held = None
        for item, err in held:
            self._skip(item, err)


def check_readable(dataset: Dataset) -> None:
    """Stop with one line when no file of ``dataset`` can be read (see
    :meth:`SkipsUnreadableFiles.check_readable`); nothing for datasets that cannot fail."""
    if isinstance(dataset, SkipsUnreadableFiles):
        dataset.check_readable()


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
