"""``video_folder``: a folder of video files, labelled by class sub-folders when it has them.

Layouts of ``root`` (and of ``test_root``):

- ``root/<class>/.../<clip>.mp4``: labelled; classes are the sub-folders holding videos (at any
  depth below them), sorted by name, label ``k`` the ``k``-th; files directly in ``root`` are
  then ignored (with a warning);
- ``root/<clip>.mp4``: unlabelled (label ``-1``): no probe is trained and no test accuracy is
  reported, the run still trains and logs.

Files are recognised by :data:`VIDEO_EXTENSIONS` (any case). Nothing is decoded when the source
is built; each item is decoded when it is read, in the loader worker that reads it, with the
``backend`` chosen (``auto``: see :mod:`levyjepa.data.video.video_readers`). Clip sampling, views,
augmentation and the handling of short and unreadable files are those of
:class:`levyjepa.data.video.video_clips.ClipDataset`. Our test set of real clips (five unlabelled
clips: H.264 MP4 at 28, 30 and 29.97 fps, a 32-frame clip, MPEG-4 part 2 AVI with audio) reads with
either backend.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.video.video_clips import ClipDataset
from levyjepa.data.video.video_sources import VideoFiles
from levyjepa.data.video.video_transforms import ClipAugmentation, ClipCenterView

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                    ".flv", ".3gp", ".ts")
"""File name endings read as videos (any case)."""


def _videos_in(folder: Path, *, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                  and not p.name.startswith("."))


def scan_videos(root: Path, classes: Optional[list[str]] = None
                ) -> tuple[list[Path], list[int], list[str]]:
    """List the videos under ``root`` and their labels.

    Args:
        root: The folder.
        classes: Class names fixing the labels (the training folder's); ``None`` takes the
            folder's own class sub-folders. Given for a test folder, every sub-folder must be
            one of them.

    Returns:
        Paths, labels (``-1`` everywhere when unlabelled) and class names (empty when
        unlabelled).

    Raises:
        ConfigError: naming the missing or empty folder, or an unknown class.
    """
    if not root.is_dir():
        raise ConfigError(f"video folder '{root}' does not exist")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    by_class = {p.name: _videos_in(p, recursive=True) for p in subfolders}
    by_class = {name: files for name, files in by_class.items() if files}
    loose = _videos_in(root, recursive=False)
    if not by_class:
        if classes:
            raise ConfigError(f"video folder '{root}' has no class sub-folders, but the training "
                              f"folder has classes {', '.join(classes[:5])}")
        if not loose:
            raise ConfigError(f"video folder '{root}' holds no videos with extensions "
                              f"{', '.join(VIDEO_EXTENSIONS)}")
        return loose, [-1] * len(loose), []
    if loose:
        warnings.warn(f"video folder '{root}' has class sub-folders: ignoring the {len(loose)} "
                      "video file(s) directly in it", RuntimeWarning, stacklevel=2)
    if classes is None:
        classes = sorted(by_class)
    unknown = sorted(set(by_class) - set(classes))
    if unknown:
        raise ConfigError(f"video folder '{root}': class folder '{unknown[0]}' is not a class of "
                          "the training folder")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = by_class.get(name, [])
        paths += files
        labels += [label] * len(files)
    return paths, labels, classes


@DATA.register("video_folder")
def video_folder(
    *,
    root: Optional[str] = None,
    test_root: Optional[str] = None,
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
    """Clips of the videos in a folder (see the module docstring for the layouts).

    Args:
        root: The training folder (required).
        test_root: A folder with the same class sub-folders for ``test/acc`` (labelled data
            only), or ``None``.
        backend: ``auto``, ``decord``, ``pyav`` or ``torchcodec``.
        decode_threads: Decoder threads per reader (the loader workers already run in parallel).
        size: Side of every view's frames in pixels.
        frames_per_clip: Frames per clip ``T``.
        frame_step: Source frames between clip frames; ``null`` to use ``fps`` instead.
        fps: Target frame rate (the step is then each file's own rate over it, e.g. 2.997 frames
            for a 29.97 fps file at 10 fps); ``null`` to use ``frame_step``.
        views: Views per clip ``V`` (different spatial crops of the same frames).
        independent_starts: Give each view its own random temporal start.
        short_video: ``pad`` (repeat the last frame) or ``loop`` (wrap to the start) for videos
            shorter than a clip.
        on_error: ``skip`` (report, count in ``data/skipped_files``, read the next video) or
            ``raise`` for unreadable files.
        seed: Seed of the per-(epoch, clip) randomness.
        crop_scale: Area range of the random resized crop.
        crop_ratio: Aspect-ratio range of the crop.
        flip_p: Probability of a horizontal flip.
        color_jitter: Brightness, contrast, saturation and hue strengths.
        color_jitter_p: Probability of the colour jitter.
        grayscale_p: Probability of grey views.

    Returns:
        Training items ``((V, 3, T, size, size), label)``; test items ``((3, T, size, size),
        label)``; ``num_classes`` 0 when unlabelled.
    """
    if root is None:
        raise ConfigError("data.root: set data.root=DIR, a folder of video files (or of class "
                          "sub-folders of them)")
    try:
        paths, labels, classes = scan_videos(Path(root).expanduser())
    except ConfigError as err:
        raise ConfigError(f"data.root: {err}") from None
    test = None
    if test_root is not None and classes:
        try:
            test = scan_videos(Path(test_root).expanduser(), classes)[:2]
        except ConfigError as err:
            raise ConfigError(f"data.test_root: {err}") from None
    elif test_root is not None:
        warnings.warn("data.test_root is ignored: the training folder is unlabelled",
                      RuntimeWarning, stacklevel=2)
    return clip_splits(
        (paths, labels), test, num_classes=len(classes), backend=backend,
        decode_threads=decode_threads, size=size, frames_per_clip=frames_per_clip,
        frame_step=frame_step, fps=fps, views=views, independent_starts=independent_starts,
        short_video=short_video, on_error=on_error, seed=seed, crop_scale=crop_scale,
        crop_ratio=crop_ratio, flip_p=flip_p, color_jitter=color_jitter,
        color_jitter_p=color_jitter_p, grayscale_p=grayscale_p)


def clip_splits(train: tuple[Any, list[int]],
                test: Optional[tuple[Any, list[int]]], *, num_classes: int,
                backend: str, decode_threads: int, size: int, frames_per_clip: int,
                frame_step: Optional[int], fps: Optional[float], views: int,
                independent_starts: bool, short_video: str, on_error: str, seed: int,
                crop_scale: tuple[float, float], crop_ratio: tuple[float, float], flip_p: float,
                color_jitter: tuple[float, float, float, float], color_jitter_p: float,
                grayscale_p: float, videos: Callable[..., Any] = VideoFiles) -> DataSplits:
    """The splits of labelled videos, shared by ``video_folder``, ``clip_list`` and
    ``video_shards``: the augmented training clips, the same videos un-augmented
    (``train_eval``) and the test videos, both centre views. The keywords are those of
    :func:`video_folder`.

    Args:
        train: The training videos (what ``videos`` reads: files for :class:`VideoFiles`) and
            their labels.
        test: The test videos and their labels, or ``None``.
        num_classes: The number of classes (0: unlabelled).
        videos: Opens the videos of a split, called as ``videos(items, backend=,
            threads=)``.
    """
    paths, labels = train
    clip = dict(frames_per_clip=frames_per_clip, frame_step=frame_step, fps=fps,
                short_video=short_video, on_error=on_error, seed=seed)
    augmentation = ClipAugmentation(
        size=size, crop_scale=tuple(crop_scale), crop_ratio=tuple(crop_ratio), flip_p=flip_p,
        color_jitter=tuple(color_jitter), color_jitter_p=color_jitter_p, grayscale_p=grayscale_p,
    )
    read = dict(backend=backend, threads=decode_threads)
    train_set = ClipDataset(videos(paths, **read), labels, transform=augmentation,
                            views=views, independent_starts=independent_starts, **clip)
    center = ClipCenterView(size=size)
    train_eval = ClipDataset(videos(paths, **read), labels, transform=center, views=None,
                             **clip)
    train_eval.share_unreadable(train_set)  # the same videos: each skipped one reported once
    test_set = None
    if test is not None and len(test[1]):
        test_set = ClipDataset(videos(test[0], **read), test[1], transform=center,
                               views=None, **clip)
    return DataSplits(train=train_set, test=test_set, num_classes=num_classes,
                      train_eval=train_eval, view_groups=((views, size),))
