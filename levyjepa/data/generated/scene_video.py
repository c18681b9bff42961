"""``scene_video``: generated clips of several moving shapes, with exact ground truth.

Videos come from :func:`levyjepa.data.generated.scene_clips.render_scene_clip` (several shapes of
distinct classes moving, occluding one another, leaving and re-entering the frame over a panning
textured background), rendered when an item is read. The label of a video is the class of its
largest object in frame 0 (the most visible pixels), so there are ``classes`` classes. Clip
sampling, views and augmentation are those of ``synthetic_video`` and ``video_folder``
(:class:`levyjepa.data.video.video_clips.ClipDataset`).

The training videos are indices ``0 .. train_size - 1``, the test videos
``TEST_START .. TEST_START + test_size - 1``. Evaluation code gets a test video's instance
maps and point tracks from the same parameters::

    test = SceneClipVideos(count=test_size, start=TEST_START, seed=seed, size=size,
                           frames=video_frames, classes=classes, objects=objects,
                           jump_prob=jump_prob, points=points)
    clip = test.ground_truth(i)  # SceneClip of test video i (frames, instances, tracks, ...)
"""

from __future__ import annotations

from functools import partial
from typing import Optional

import numpy as np

from levyjepa.core.registry import DATA
from levyjepa.data.generated.scene_clips import (
    SceneClip,
    check_scene_clip_args,
    clip_label,
    render_scene_clip,
)
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.video.video_clips import generated_clip_splits
from levyjepa.data.video.video_sources import ClipPlan

TEST_START = 1 << 40
"""Index of the first test video of ``scene_video`` (the training videos start at 0)."""


class SceneClipVideos:
    """Videos ``start .. start + count - 1`` of :func:`render_scene_clip`, rendered on access.

    Args:
        count: Number of videos.
        start: Index of the first (:data:`TEST_START` for the test videos of ``scene_video``).
        seed: Seed of the data set.
        size: Frame side in pixels.
        frames: Frames per video.
        video_fps: The frame rate the videos are said to have.
        classes: Number of shape classes.
        objects: ``(min, max)`` number of objects per video.
        jump_prob: Probability of a jump between two frames.
        speed: Typical drift of an object per frame, in frame sides.
        points: Tracked points per video.

    Raises:
        ValueError: naming the invalid argument and its valid range.
    """

    def __init__(self, *, count: int, start: int = 0, seed: int = 0, size: int = 32,
                 frames: int = 32, video_fps: float = 30.0, classes: int = 6,
                 objects: tuple[int, int] = (2, 4), jump_prob: float = 0.1,
                 speed: float = 0.03, points: int = 8) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        if not video_fps > 0:
            raise ValueError(f"video_fps must be > 0, got {video_fps!r}")
        check_scene_clip_args(seed=seed, index=start, size=size, frames=frames, objects=objects,
                              classes=classes, jump_prob=jump_prob, speed=speed, points=points)
        self.count, self.start, self.seed = count, start, seed
        self.size, self.frames, self.video_fps = size, frames, float(video_fps)
        self.params = dict(size=size, frames=frames, objects=tuple(objects), classes=classes,
                           jump_prob=jump_prob, speed=speed, points=points)
        self._labels: Optional[list[int]] = None

    def __len__(self) -> int:
        return self.count

    def labels(self) -> list[int]:
        """The label of every video: the class of its largest object in frame 0."""
        if self._labels is None:
            self._labels = [clip_label(self.seed, self.start + i, size=self.size,
                                       objects=self.params["objects"],
                                       classes=self.params["classes"])
                            for i in range(self.count)]
        return list(self._labels)

    def describe(self, index: int) -> str:
        return f"scene video {self.start + index} (seed {self.seed})"

    def ground_truth(self, index: int) -> SceneClip:
        """The whole video ``index`` with its instance maps and point tracks."""
        if not 0 <= index < self.count:
            raise IndexError(f"video {index} out of range 0..{self.count - 1}")
        return render_scene_clip(self.seed, self.start + index, **self.params)

    def render(self, index: int) -> np.ndarray:
        """uint8 frames ``(frames, size, size, 3)`` of video ``index``."""
        return self.ground_truth(index).frames

    def load(self, index: int, plan: ClipPlan) -> list[np.ndarray]:
        video = self.render(index)
        return [video[indices] for indices in plan(len(video), self.video_fps)]


@DATA.register("scene_video")
def scene_video(
    *,
    size: int = 32,
    video_frames: int = 32,
    video_fps: float = 30.0,
    frames_per_clip: int = 8,
    frame_step: Optional[int] = 2,
    fps: Optional[float] = None,
    views: int = 2,
    independent_starts: bool = False,
    short_video: str = "pad",
    train_size: int = 1000,
    test_size: int = 200,
    classes: int = 6,
    objects: tuple[int, int] = (2, 4),
    points: int = 8,
    jump_prob: float = 0.1,
    seed: int = 0,
    crop_scale: tuple[float, float] = (0.3, 1.0),
    crop_ratio: tuple[float, float] = (0.75, 1.3333333333333333),
    flip_p: float = 0.5,
    color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
    color_jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
) -> DataSplits:
    """Generated clips of moving, occluding shapes (:mod:`~levyjepa.data.generated.scene_clips`).

    Args:
        size: Side of the generated frames and of every view, in pixels (>= 16).
        video_frames: Frames per generated video.
        video_fps: The generated videos' frame rate (what ``fps`` sampling refers to).
        frames_per_clip: Frames per clip ``T``.
        frame_step: Source frames between clip frames; ``null`` to use ``fps``.
        fps: Target frame rate; ``null`` to use ``frame_step``.
        views: Views per clip ``V``.
        independent_starts: Give each view its own random temporal start.
        short_video: ``pad`` or ``loop`` for videos shorter than a clip.
        train_size: Number of training videos (indices from 0).
        test_size: Number of test videos (indices from :data:`TEST_START`; 0: no evaluation).
        classes: Number of shape classes (2 to 6); the label is the largest object's class.
        objects: ``(min, max)`` objects per video, of distinct classes (max <= classes).
        points: Tracked points per video (>= objects[1]); used by the ground truth only.
        jump_prob: Probability of a jump of an object between two frames.
        seed: Seed of the videos and of their augmentation.
        crop_scale: Area range of the random resized crop.
        crop_ratio: Aspect-ratio range of the crop.
        flip_p: Probability of a horizontal flip.
        color_jitter: Brightness, contrast, saturation and hue strengths.
        color_jitter_p: Probability of the colour jitter.
        grayscale_p: Probability of grey views.

    Raises:
        ValueError: naming the invalid parameter and its valid range.
    """
    for name, value, low in (("train_size", train_size, 1), ("test_size", test_size, 0),
                             ("video_frames", video_frames, 1), ("size", size, 16)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    render = dict(seed=seed, size=size, frames=video_frames, video_fps=video_fps,
                  classes=classes, objects=objects, jump_prob=jump_prob, points=points)
    clip = dict(frames_per_clip=frames_per_clip, frame_step=frame_step, fps=fps,
                short_video=short_video, seed=seed)
    augment = dict(crop_scale=crop_scale, crop_ratio=crop_ratio, flip_p=flip_p,
                   color_jitter=color_jitter, color_jitter_p=color_jitter_p,
                   grayscale_p=grayscale_p)
    return generated_clip_splits(
        partial(SceneClipVideos, **render), train_size=train_size, test_size=test_size,
        test_start=TEST_START, num_classes=classes, size=size, views=views,
        independent_starts=independent_starts, clip=clip, augment=augment)
