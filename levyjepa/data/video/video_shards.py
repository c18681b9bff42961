"""``video_shards``: videos in local tar shards (the WebDataset layout), read by offset.

Shards are written by ``python -m levyjepa.data.shards SRC OUT`` from a video folder
(:mod:`levyjepa.data.shards`) or by any WebDataset tool: a sample is the members sharing a key,
its video the member named ``<key>.mp4`` (or ``avi``, ``webm``, ``mkv``, ... ; ``data.video_key``
picks one), its label the integer in ``<key>.cls`` (``data.label_key``; ``-1`` without one). The
class names come from ``classes.json`` beside the shards (written by the writer in
``video_folder``'s class order); without it the number of classes is the largest label plus one,
and with no label at all the data is unlabelled (no probe, no ``test/acc``), as in
``video_folder``.

``data.root`` names the training shards: a folder (its ``train-*.tar``, or every ``*.tar`` when
none is so named), a brace pattern (``/data/k400/train-{000000..000255}.tar``) or a list;
``data.test_root`` the test shards likewise (null with a folder ``root``: its ``val-*.tar``
shards, if any). Every other key is ``video_folder``'s, with the same meaning: clip sampling,
views, augmentation, and the handling of short and unreadable videos are those of
:class:`levyjepa.data.video.video_clips.ClipDataset`, so shards written from a folder give that
folder's clips item for item. A video is read as one ``pread`` of its member's bytes and decoded
from memory by the backend (:func:`levyjepa.data.video.video_readers.open_video` takes bytes).
A video that does not decode, or that a truncated shard cut off, is skipped and counted or stops
the run, as ``data.on_error`` says; a damaged shard is reported when the source is built
(:mod:`levyjepa.data.shards.tar_index`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA
from levyjepa.data.loading.skipped_files import check_on_error
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.shards.tar_index import (
    ShardSamples,
    expand_shards,
    index_shards,
    read_classes,
)
from levyjepa.data.video.video_folder import VIDEO_EXTENSIONS, clip_splits
from levyjepa.data.video.video_readers import backend_order
from levyjepa.data.video.video_sources import ClipPlan, UnreadableVideo, read_with_backends

VIDEO_FIELDS = tuple(ext.lstrip(".") for ext in VIDEO_EXTENSIONS)
"""Extensions read as a sample's video when ``data.video_key`` is null, the first one present."""


class ShardVideos:
    """The videos of indexed shards, as clip datasets read them (the
    :class:`~levyjepa.data.video.video_sources.VideoSource` protocol), each decoded from its
    member's bytes with the backends of a ``backend`` setting, in order.

    Args:
        samples: The index of the shards' samples (their videos are the main field).
        backend: ``auto`` or one backend (:func:`~levyjepa.data.video.video_readers.backend_order`).
        threads: Decoder threads per reader.
    """

    def __init__(self, samples: ShardSamples, *, backend: str = "auto", threads: int = 1
                 ) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"decode_threads must be a positive integer, got {threads!r}")
        self.samples, self.order, self.threads = samples, backend_order(backend), threads

    @property
    def paths(self) -> list[str]:
        """The shard files (messages name their folder)."""
        return self.samples.paths

    def __len__(self) -> int:
        return len(self.samples)

    def describe(self, index: int) -> str:
        return self.samples.describe(index)

    def load(self, index: int, plan: ClipPlan) -> list[np.ndarray]:
        data = self.samples.read(index, UnreadableVideo)
        return read_with_backends(data, plan, order=self.order, threads=self.threads,
                                  name=self.describe(index), noun="the member")


def _split(spec: Union[str, list[str]], *, key: str, prefix: Optional[str],
           exclude: Optional[str], video_key: Optional[str], label_key: Optional[str],
           on_error: str) -> tuple[ShardSamples, Optional[list[str]]]:
    shards = expand_shards(spec, key=key, prefix=prefix, exclude=exclude)
    samples = index_shards(shards, wanted=(video_key,) if video_key else VIDEO_FIELDS,
                           label_key=label_key, on_error=on_error, key=key)
    return samples, read_classes(shards)


@DATA.register("video_shards")
def video_shards(
    *,
    root: Union[str, list[str], None] = None,
    test_root: Union[str, list[str], None] = None,
    train_split: str = "train",
    test_split: Optional[str] = "val",
    video_key: Optional[str] = None,
    label_key: Optional[str] = "cls",
    backend: str = "auto",
    decode_threads: int = 1,
    size: int = 128,
    frames_per_clip: int = 16,
    frame_step: Optional[int] = 4,
    fps: Optional[float] = None,
    views: int = 2,
    independent_starts: bool = False,
    short_video: str = "pad",
    on_error: str = "skip",
    seed: int = 0,
    crop_scale: tuple[float, float] = (0.3, 1.0),
    crop_ratio: tuple[float, float] = (0.75, 1.3333333333333333),
    flip_p: float = 0.5,
    color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
    color_jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
) -> DataSplits:
    """Clips of the videos in tar shards (see the module docstring).

    Args:
        root: The training shards: a folder, a brace pattern or a list of shards.
        test_root: The test shards likewise (labelled data only), or ``None`` (a folder
            ``root``'s ``<test_split>-*.tar`` shards, if any).
        train_split: In a folder, the training shards are named ``<train_split>-*.tar``.
        test_split: In a folder, the test shards are named ``<test_split>-*.tar``.
        video_key: The video member's extension (``mp4``); ``None`` takes the first of
            :data:`VIDEO_FIELDS` each sample has.
        label_key: The label member's extension; ``None``: unlabelled.
        backend, decode_threads, size, frames_per_clip, frame_step, fps, views,
        independent_starts, short_video, on_error, seed, crop_scale, crop_ratio, flip_p,
        color_jitter, color_jitter_p, grayscale_p: As for
            :func:`levyjepa.data.video.video_folder.video_folder`.

    Returns:
        Training items ``((V, 3, T, size, size), label)``; test items ``((3, T, size, size),
        label)``; ``num_classes`` 0 when unlabelled.
    """
    check_on_error(on_error)
    if root is None:
        raise ConfigError("data.root: set data.root to a folder of *.tar shards, a pattern "
                          "such as train-{000000..000009}.tar or a list of shards")
    keys = dict(video_key=video_key, label_key=label_key, on_error=on_error)
    train, classes = _split(root, key="data.root", prefix=train_split, exclude=test_split,
                            **keys)
    num_classes = len(classes) if classes else int(train.labels.max()) + 1
    test_spec = test_root
    if test_spec is None and test_split is not None and isinstance(root, str):
        folder = Path(root).expanduser()  # a folder root: its <test_split>-*.tar, if any
        named = sorted(folder.glob(f"{test_split}-*.tar")) if folder.is_dir() else []
        test_spec = [str(p) for p in named] or None
    test = None
    if test_spec is not None and num_classes:
        test = _split(test_spec, key="data.test_root", prefix=test_split, exclude=None,
                      **keys)[0]
    elif test_root is not None:
        warnings.warn("data.test_root is ignored: the training shards are unlabelled",
                      RuntimeWarning, stacklevel=2)
    return clip_splits(
        (train, train.labels.tolist()),
        (test, test.labels.tolist()) if test is not None else None,
        num_classes=num_classes, backend=backend, decode_threads=decode_threads, size=size,
        frames_per_clip=frames_per_clip, frame_step=frame_step, fps=fps, views=views,
        independent_starts=independent_starts, short_video=short_video, on_error=on_error,
        seed=seed, crop_scale=crop_scale, crop_ratio=crop_ratio, flip_p=flip_p,
        color_jitter=color_jitter, color_jitter_p=color_jitter_p, grayscale_p=grayscale_p,
        videos=ShardVideos)
