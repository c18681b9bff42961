"""Collections of videos a clip dataset reads: files on disk, decoded with a backend order.

A *video source* is indexable by item and loads the frames of item ``i`` that a *plan* asks for.
The plan sees the video's frame count and frame rate (known only once it is open) and returns
one index array per temporal view; the source returns the frames of each, uint8
``(T, H, W, 3)``. Loading opens the file, reads every view's frames in one pass and closes the
file, so nothing is held open between items and no decoder crosses a fork. A file no backend can
read raises :class:`UnreadableVideo`, naming it and each backend's error on one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from levyjepa.core.errors import UnreadableFile
from levyjepa.data.video.video_readers import (
    StreamEndedEarly,
    VideoInput,
    backend_order,
    open_video,
)

ClipPlan = Callable[[int, float], list[np.ndarray]]
"""``(num_frames, fps) -> [indices of view 0, indices of view 1, ...]``."""


class UnreadableVideo(UnreadableFile):
    """Every backend failed on a file; the message names the file and each backend's error.

    A :class:`levyjepa.core.errors.ConfigError`: with ``data.on_error=raise`` the command line
    prints it as one line (see :mod:`levyjepa.data.loading.skipped_files`).
    """


class VideoSource(Protocol):
    """What :class:`levyjepa.data.video.video_clips.ClipDataset` reads."""

    def __len__(self) -> int: ...

    def describe(self, index: int) -> str:
        """A name for item ``index`` in messages (its path)."""
        ...

    def load(self, index: int, plan: ClipPlan) -> list[np.ndarray]:
        """The frames ``plan`` asks for, one uint8 ``(T, H, W, 3)`` array per view.

        Raises:
            UnreadableVideo: when the item cannot be read.
        """
        ...


def read_planned(reader: object, plan: ClipPlan) -> list[np.ndarray]:
    """Ask ``plan`` for indices given the reader's length and rate, read them in one pass.

    A header that overstates the length (a truncated file) is corrected from the frames that
    actually decode, and the plan is asked again.
    """
    fps = float(reader.fps)  # type: ignore[attr-defined]
    views = plan(int(reader.num_frames), fps)  # type: ignore[attr-defined]
    try:
        frames = reader.read(np.concatenate(views))  # type: ignore[attr-defined]
    except StreamEndedEarly as short:
        if short.frames < 1:
            raise
        views = plan(short.frames, fps)
        frames = reader.read(np.concatenate(views))  # type: ignore[attr-defined]
    bounds = np.cumsum([len(v) for v in views])[:-1]
    return list(np.split(frames, bounds))


def read_with_backends(video: VideoInput, plan: ClipPlan, *, order: Sequence[str],
                       threads: int, name: str, noun: str) -> list[np.ndarray]:
    """The frames ``plan`` asks for from one video (a file or its bytes), trying the backends
    of ``order`` in turn: the first that reads it wins.

    Args:
        video: The video's path or bytes.
        plan: Which frames each view takes (:func:`read_planned`).
        order: Backends to try (:func:`levyjepa.data.video.video_readers.backend_order`).
        threads: Decoder threads per reader.
        name: What messages call the video (its path, or ``shard:member``).
        noun: What a backend's own message calls it instead of repeating ``name``.

    Raises:
        UnreadableVideo: every backend failed; one line naming each one's first reason.
    """
    errors = []
    for backend in order:
        try:
            with open_video(video, backend, threads=threads, name=name) as reader:
                return read_planned(reader, plan)
        except Exception as err:  # decoders raise many types for damaged data
            first = (str(err).strip().splitlines() or [""])[0][:200]
            first = first.replace(f": '{name}'", "").replace(name, noun)
            errors.append(f"{backend}: {type(err).__name__}: {first}")
    raise UnreadableVideo(f"{name}: " + "; ".join(errors))


class VideoFiles:
    """Video files read with the backends of a ``backend`` setting, in order.

    With several backends (``auto``), a file the first cannot read is tried with the next; it
    is unreadable only when all fail. :func:`levyjepa.data.video.video_readers.backend_order` gives
    the order (for ``auto``, :data:`levyjepa.data.video.video_readers.AUTO_ORDER`).

    Args:
        paths: One file per item.
        backend: ``auto``, ``decord``, ``pyav`` or ``torchcodec``.
        threads: Decoder threads per reader.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], *, backend: str = "auto",
                 threads: int = 1) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"decode_threads must be a positive integer, got {threads!r}")
        self.paths = [os.fspath(p) for p in paths]
        self.backend = backend
        self.order = backend_order(backend)
        self.threads = threads

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self, index: int) -> str:
        return self.paths[index]

    def load(self, index: int, plan: ClipPlan) -> list[np.ndarray]:
        path = self.paths[index]
        return read_with_backends(path, plan, order=self.order, threads=self.threads, name=path,
                                  noun="the file")
