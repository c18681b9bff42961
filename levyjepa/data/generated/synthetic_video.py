"""``synthetic_video``: generated labelled clips (no files needed), and a writer to ``.mp4``.

Videos come from :func:`levyjepa.data.generated.moving_shapes.render_video` (a shape moving over a
textured background along a smooth path with occasional jumps; the label is the shape), rendered
when an item is read. Clip sampling, views and augmentation are those of ``video_folder``
(:class:`levyjepa.data.video.video_clips.ClipDataset`), so the two sources differ only in where the
frames come from. :func:`write_synthetic_videos` writes the same videos as files, a class
sub-folder each, which ``video_folder`` reads back through the real decoders::

    python -m levyjepa.data.generated.synthetic_video OUT_DIR --count 60 --size 64 --frames 48
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np

from levyjepa.core.registry import DATA
from levyjepa.data.generated.moving_shapes import MOVING_SHAPES, render_video
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.video.video_clips import generated_clip_splits
from levyjepa.data.video.video_sources import ClipPlan
from levyjepa.data.video.video_writer import write_video

# Test videos are drawn from a disjoint range of indices.
_TEST_START = 1 << 40


class SyntheticVideos:
    """Videos ``start .. start + count - 1`` of :func:`render_video`, rendered on access.

    Args:
        count: Number of videos.
        start: Index of the first.
        seed: Seed of the data set.
        size: Frame side in pixels.
        frames: Frames per video.
        video_fps: The frame rate the videos are said to have.
        classes: Number of shape classes.
        jump_prob: Probability of a jump between two frames.
    """

    def __init__(self, *, count: int, start: int = 0, seed: int = 0, size: int = 32,
                 frames: int = 32, video_fps: float = 30.0, classes: int = 6,
                 jump_prob: float = 0.1) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        if not video_fps > 0:
            raise ValueError(f"video_fps must be > 0, got {video_fps!r}")
        render_video(seed, start, size=size, frames=1, classes=classes, jump_prob=jump_prob)
        self.count, self.start, self.seed = count, start, seed
        self.size, self.frames, self.video_fps = size, frames, float(video_fps)
        self.classes, self.jump_prob = classes, jump_prob

    def __len__(self) -> int:
        return self.count

    def labels(self) -> list[int]:
        """The label of every video (the shape class)."""
        return [(self.start + i) % self.classes for i in range(self.count)]

    def describe(self, index: int) -> str:
        return f"synthetic video {self.start + index} (seed {self.seed})"

    def render(self, index: int) -> np.ndarray:
        """uint8 frames ``(frames, size, size, 3)`` of video ``index``."""
        frames, _ = render_video(self.seed, self.start + index, size=self.size,
                                 frames=self.frames, classes=self.classes,
                                 jump_prob=self.jump_prob)
        return frames

    def load(self, index: int, plan: ClipPlan) -> list[np.ndarray]:
        video = self.render(index)
        return [video[indices] for indices in plan(len(video), self.video_fps)]


def write_synthetic_videos(
    root: str | Path,
    count: int,
    *,
    start: int = 0,
    seed: int = 0,
    size: int = 32,
    frames: int = 32,
    video_fps: float | Fraction = 30,
    classes: int = 6,
    jump_prob: float = 0.1,
    codec: str = "libx264",
) -> list[Path]:
    """Write videos ``start .. start + count - 1`` to ``root/<shape>/video_<index>.<ext>``.

    Args:
        root: Output folder (created).
        count: Number of videos.
        start: Index of the first.
        seed: Seed of the data set.
        size: Frame side (even).
        frames: Frames per video.
        video_fps: Frame rate (a ``Fraction`` for NTSC rates).
        classes: Number of shape classes.
        jump_prob: Probability of a jump between two frames.
        codec: ``libx264`` (``.mp4``) or ``mpeg4`` (``.avi``).

    Returns:
        The files written, in index order.
    """
    ext = ".avi" if codec == "mpeg4" else ".mp4"
    source = SyntheticVideos(count=count, start=start, seed=seed, size=size, frames=frames,
                             classes=classes, jump_prob=jump_prob)
    written = []
    for i, label in enumerate(source.labels()):
        folder = Path(root) / MOVING_SHAPES[label]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"video_{start + i:06d}{ext}"
        write_video(path, source.render(i), fps=video_fps, codec=codec)
        written.append(path)
    return written


@DATA.register("synthetic_video")
def synthetic_video(
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
    jump_prob: float = 0.1,
    seed: int = 0,
    crop_scale: tuple[float, float] = (0.3, 1.0),
    crop_ratio: tuple[float, float] = (0.75, 1.3333333333333333),
    flip_p: float = 0.5,
    color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
    color_jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
) -> DataSplits:
    """Generated labelled clips of moving shapes (see :mod:`levyjepa.data.generated.moving_shapes`).

    Args:
        size: Side of the generated frames and of every view, in pixels.
        video_frames: Frames per generated video.
        video_fps: The generated videos' frame rate (what ``fps`` sampling refers to).
        frames_per_clip: Frames per clip ``T``.
        frame_step: Source frames between clip frames; ``null`` to use ``fps``.
        fps: Target frame rate; ``null`` to use ``frame_step``.
        views: Views per clip ``V``.
        independent_starts: Give each view its own random temporal start.
        short_video: ``pad`` or ``loop`` for videos shorter than a clip.
        train_size: Number of training videos.
        test_size: Number of test videos (0: no evaluation).
        classes: Number of shape classes (2 to 6).
        jump_prob: Probability of a jump of the shape between two frames.
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
                             ("video_frames", video_frames, 1), ("size", size, 8)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    render = dict(seed=seed, size=size, frames=video_frames, video_fps=video_fps,
                  classes=classes, jump_prob=jump_prob)
    clip = dict(frames_per_clip=frames_per_clip, frame_step=frame_step, fps=fps,
                short_video=short_video, seed=seed)
    augment = dict(crop_scale=crop_scale, crop_ratio=crop_ratio, flip_p=flip_p,
                   color_jitter=color_jitter, color_jitter_p=color_jitter_p,
                   grayscale_p=grayscale_p)
    return generated_clip_splits(
        partial(SyntheticVideos, **render), train_size=train_size, test_size=test_size,
        test_start=_TEST_START, num_classes=classes, size=size, views=views,
        independent_starts=independent_starts, clip=clip, augment=augment)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line: write a folder of generated videos (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m levyjepa.data.generated.synthetic_video",
                                     description="Write generated labelled videos to files.")
    parser.add_argument("out", help="output folder (class sub-folders are created)")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--classes", type=int, default=len(MOVING_SHAPES))
    parser.add_argument("--codec", choices=("libx264", "mpeg4"), default="libx264")
    args = parser.parse_args(argv)
    paths = write_synthetic_videos(args.out, args.count, start=args.start, seed=args.seed,
                                   size=args.size, frames=args.frames, video_fps=args.fps,
                                   classes=args.classes, codec=args.codec)
    print(f"wrote {len(paths)} videos to {args.out}")


if __name__ == "__main__":
    main()
