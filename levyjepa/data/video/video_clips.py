"""Clip datasets: ``V`` augmented views of a clip of every video (training), or one centred view.

Training items are ``(views, label)`` with ``views`` float ``(V, 3, T, size, size)``: the clip's
frames are chosen by :mod:`levyjepa.data.video.clip_sampling` from a random start (one start shared
by the views, or one per view with ``independent_starts``), and each view is a different random
crop, flip and colour change of them, identical across the frames of that view
(:class:`levyjepa.data.video.video_transforms.ClipAugmentation`). The randomness of item ``i`` in
epoch ``e`` comes from a generator seeded by ``(seed, e, i)``, as for images
(:mod:`levyjepa.data.views.multi_view`): the views do not depend on the number of loader workers or
processes, and a resumed run sees the clips an uninterrupted one would. Test items are
``(view, label)`` with one view ``(3, T, size, size)`` from the middle of the video, resized
and centre-cropped.

**Unreadable files.** A file no backend can read is, with ``on_error="skip"``, reported on
stderr in one line naming it, marked in ``ClipDataset.unreadable`` and replaced by the next
readable item, with the randomness of the original index (so an epoch never stops on a damaged
file and the other items are unchanged); with ``on_error="raise"`` the
:class:`~levyjepa.data.video.video_sources.UnreadableVideo` propagates (one line on the command
line). The policy is the images' too:
:class:`levyjepa.data.loading.skipped_files.SkipsUnreadableFiles`; the training loop logs the count
as ``data/skipped_files``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from levyjepa.data.loading.skipped_files import SkipsUnreadableFiles
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.video.clip_sampling import (
    SHORT_VIDEO_POLICIES,
    center_start,
    clip_indices,
    clip_step,
    random_start,
)
from levyjepa.data.video.video_sources import VideoSource
from levyjepa.data.video.video_transforms import ClipAugmentation, ClipCenterView
from levyjepa.data.views.multi_view import item_seed


class ClipDataset(SkipsUnreadableFiles, Dataset):
    """Clips of the videos of a :class:`~levyjepa.data.video.video_sources.VideoSource`.

    Args:
        videos: The videos, one per item.
        labels: Their labels (``-1`` for unlabelled items).
        transform: uint8 frames ``(T, H, W, 3)`` to a float view ``(3, T, size, size)``;
            random transforms use the global torch generator, seeded per item here.
        frames_per_clip: Frames per clip ``T``.
        frame_step: Source frames between clip frames, or ``None`` to use ``fps``.
        fps: Target frame rate (the step follows each file's own rate), or ``None``.
        views: Views per training item ``V``; ``None`` makes a test dataset (one centred,
            un-augmented view per item, no leading view axis).
        independent_starts: Draw a temporal start per view instead of one per item.
        short_video: ``pad`` or ``loop`` (see :mod:`levyjepa.data.video.clip_sampling`).
        on_error: ``skip`` or ``raise`` for unreadable files.
        seed: Base seed of the per-(epoch, item) randomness.

    Raises:
        ValueError: naming the first invalid parameter and its valid values.
    """

    epoch_in_shared_memory = True
    """``set_epoch`` reaches loader workers started earlier (persistent workers are safe)."""

    def __init__(
        self,
        videos: VideoSource,
        labels: Sequence[int],
        *,
        transform: Callable[[np.ndarray], torch.Tensor],
        frames_per_clip: int,
        frame_step: Optional[int],
        fps: Optional[float],
        views: Optional[int],
        independent_starts: bool = False,
        short_video: str = "pad",
        on_error: str = "skip",
        seed: int = 0,
    ) -> None:
        if len(videos) != len(labels):
            raise ValueError(f"{len(videos)} videos but {len(labels)} labels")
        if len(videos) == 0:
            raise ValueError("a clip dataset needs at least one video")
        _positive_int("frames_per_clip", frames_per_clip)
        if frame_step is not None:
            _positive_int("frame_step", frame_step)
        if fps is not None and not (isinstance(fps, (int, float)) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        clip_step(30.0, frame_step=frame_step, fps=fps)  # exactly one of the two
        if views is not None:
            _positive_int("views", views)
        if short_video not in SHORT_VIDEO_POLICIES:
            raise ValueError(f"short_video must be one of {', '.join(SHORT_VIDEO_POLICIES)}; "
                             f"got {short_video!r}")
        self.videos = videos
        self.labels = torch.as_tensor(list(labels), dtype=torch.int64)
        self.transform = transform
        self.frames_per_clip, self.frame_step, self.fps = frames_per_clip, frame_step, fps
        self.views, self.independent_starts = views, bool(independent_starts)
        self.short_video, self.seed = short_video, seed
        self.track_unreadable(len(videos), on_error, noun="video", files=videos)
        # in shared memory, so that loader workers see the epoch the loop sets
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        """The epoch whose randomness ``__getitem__`` draws."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose randomness ``__getitem__`` draws (in every worker)."""
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.read_readable(
            index, lambda item: (self._clip(item, seed_index=index), int(self.labels[item])))

    def _clip(self, item: int, *, seed_index: int) -> torch.Tensor:
        """The view(s) of ``item``, with the randomness of ``seed_index`` in this epoch."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, self.epoch, seed_index))
            if self.views is None:
                frames = self.videos.load(item, self._plan(None))[0]
                return self.transform(frames)
            starts = torch.rand(self.views if self.independent_starts else 1).tolist()
            clips = self.videos.load(item, self._plan(starts))
            return torch.stack([self.transform(clips[v % len(clips)])
                                for v in range(self.views)])

    def _plan(self, starts: Optional[list[float]]) -> Callable[[int, float], list[np.ndarray]]:
        """Index arrays for uniform numbers ``starts`` (``None``: the centred clip)."""

        def plan(num_frames: int, video_fps: float) -> list[np.ndarray]:
            step = clip_step(video_fps, frame_step=self.frame_step, fps=self.fps)
            common = dict(frames_per_clip=self.frames_per_clip, step=step)
            if starts is None:
                firsts = [center_start(num_frames, **common)]
            else:
                firsts = [random_start(num_frames, u=u, **common) for u in starts]
            return [clip_indices(num_frames, start=s, short_video=self.short_video, **common)
                    for s in firsts]

        return plan


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def generated_clip_splits(
    videos: Callable[..., VideoSource],
    *,
    train_size: int,
    test_size: int,
    test_start: int,
    num_classes: int,
    size: int,
    views: int,
    independent_starts: bool,
    clip: dict,
    augment: dict,
) -> DataSplits:
    """The splits of a generated video source: augmented train clips, and un-augmented train
    and test clips, the test videos from a disjoint index range.

    Args:
        videos: ``videos(count=, start=)`` builds the source's videos (with ``labels()``).
        train_size: Training videos (indices from 0).
        test_size: Test videos (indices from ``test_start``; 0: no test split).
        test_start: Index of the first test video.
        num_classes: Number of labels.
        size: Side of every view.
        views: Views per training clip.
        independent_starts: Each training view from its own temporal start.
        clip: :class:`ClipDataset` sampling arguments (``frames_per_clip``, ...).
        augment: :class:`levyjepa.data.video.video_transforms.ClipAugmentation` arguments but size.
    """
    augmentation = ClipAugmentation(size=size, **augment)
    center = ClipCenterView(size=size)
    train_videos = videos(count=train_size, start=0)
    train = ClipDataset(train_videos, train_videos.labels(), transform=augmentation,
                        views=views, independent_starts=independent_starts, **clip)
    train_eval = ClipDataset(train_videos, train_videos.labels(), transform=center, views=None,
                             **clip)
    test = None
    if test_size:
        test_videos = videos(count=test_size, start=test_start)
        test = ClipDataset(test_videos, test_videos.labels(), transform=center, views=None,
                           **clip)
    return DataSplits(train=train, test=test, num_classes=num_classes, train_eval=train_eval,
                      view_groups=((views, size),))
