"""``clip_list``: videos named by clip-list files, the format of V-JEPA 2's video evaluations.

A clip list is a text file (usually ``.csv``) with one video per line, ``<path> <label>``
separated by a space, no header::

    videos/abseiling/0001.mp4 0
    /data/k400/val/zumba/0042.mp4 399

``path`` is absolute or relative to the folder holding the list; ``label`` is an integer
``>= 0``. A path may itself contain spaces: the label is the text after the *last* space. Empty
lines are ignored. This is the format of the clip lists read by V-JEPA 2's frozen video
classification evaluation (Assran et al. 2025, ``facebookresearch/vjepa2``,
``evals/video_classification_frozen``), for Kinetics-400, Something-Something v2 and others.

Two lists, ``train_list`` (training) and ``val_list`` (``test/acc``), make the splits. Clip
sampling, views, augmentation and the handling of short and unreadable files are exactly those
of ``video_folder`` (:mod:`levyjepa.data.video.video_folder`): the same keys, the same
:class:`~levyjepa.data.video.video_clips.ClipDataset` over the same
:class:`~levyjepa.data.video.video_sources.VideoFiles` readers, so a recipe trains and
evaluates on a clip list as it does on a folder. Files are not opened when the source is built:
a missing or damaged one is handled by ``on_error`` when it is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.video.video_folder import clip_splits

CLIP_LIST_FORMAT = ("'<path> <label>' per line, separated by a space, no header (path absolute "
                    "or relative to the list's folder, label an integer >= 0)")
"""The expected line format, quoted in error messages."""


def read_clip_list(path: str | Path) -> tuple[list[Path], list[int]]:
    """Read a clip list.

    Args:
        path: The list file.

    Returns:
        The video paths (relative ones resolved against the list's folder) and their labels,
        in file order.

    Raises:
        ConfigError: naming the missing or empty file, or the file, the line number and the
            expected format for a malformed line.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"clip list '{path}' does not exist; expected a file of "
                          f"{CLIP_LIST_FORMAT}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"clip list '{path}' cannot be read as text: {err}") from None
    paths: list[Path] = []
    labels: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.rsplit(" ", 1)
        label = _label(parts[1]) if len(parts) == 2 and parts[0].strip() else None
        if label is None:
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise ConfigError(f"clip list '{path}', line {number}: expected {CLIP_LIST_FORMAT}; "
                              f"got {shown!r}")
        video = Path(parts[0].strip()).expanduser()
        paths.append(video if video.is_absolute() else path.parent / video)
        labels.append(label)
    if not paths:
        raise ConfigError(f"clip list '{path}' holds no videos; expected {CLIP_LIST_FORMAT}")
    return paths, labels


def _label(text: str) -> Optional[int]:
    text = text.strip()
    if not text.isdigit() or not text.isascii():
        return None
    return int(text)


@DATA.register("clip_list")
def clip_list(
    *,
    train_list: Optional[str] = None,
    val_list: Optional[str] = None,
    num_classes: Optional[int] = None,
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
    """Clips of the videos of two clip lists (see the module docstring for the format).

    Args:
        train_list: The training clip list (required).
        val_list: The validation clip list for ``test/acc``, or ``None``.
        num_classes: Number of classes; ``None``: one more than the largest label of the lists.
        backend: ``auto``, ``decord``, ``pyav`` or ``torchcodec``.
        decode_threads: Decoder threads per reader.
        size: Side of every view's frames in pixels.
        frames_per_clip: Frames per clip ``T``.
        frame_step: Source frames between clip frames; ``null`` to use ``fps`` instead.
        fps: Target frame rate (the step follows each file's own rate); ``null`` to use
            ``frame_step``.
        views: Views per clip ``V`` (different spatial crops of the same frames).
        independent_starts: Give each view its own random temporal start.
        short_video: ``pad`` or ``loop`` for videos shorter than a clip.
        on_error: ``skip`` or ``raise`` for unreadable (or missing) files.
        seed: Seed of the per-(epoch, clip) randomness.
        crop_scale: Area range of the random resized crop.
        crop_ratio: Aspect-ratio range of the crop.
        flip_p: Probability of a horizontal flip.
        color_jitter: Brightness, contrast, saturation and hue strengths.
        color_jitter_p: Probability of the colour jitter.
        grayscale_p: Probability of grey views.

    Returns:
        Training items ``((V, 3, T, size, size), label)``; test items ``((3, T, size, size),
        label)``, as ``video_folder``'s.

    Raises:
        ConfigError: naming the key, the file and the line at fault.
    """
    if train_list is None:
        raise ConfigError("data.train_list: set data.train_list=FILE, a clip list of "
                          f"{CLIP_LIST_FORMAT}")
    try:
        paths, labels = read_clip_list(train_list)
    except ConfigError as err:
        raise ConfigError(f"data.train_list: {err}") from None
    test_paths: list[Path] = []
    test_labels: list[int] = []
    if val_list is not None:
        try:
            test_paths, test_labels = read_clip_list(val_list)
        except ConfigError as err:
            raise ConfigError(f"data.val_list: {err}") from None
    largest = max(labels + test_labels)
    if num_classes is None:
        num_classes = largest + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"data.num_classes must be a positive integer, got {num_classes!r}")
    elif largest >= num_classes:
        raise ConfigError(f"data.num_classes={num_classes} but the clip lists hold label "
                          f"{largest}; labels run from 0 to num_classes - 1")
    return clip_splits(
        (paths, labels), (test_paths, test_labels) if test_paths else None,
        num_classes=num_classes, backend=backend, decode_threads=decode_threads, size=size,
        frames_per_clip=frames_per_clip, frame_step=frame_step, fps=fps, views=views,
        independent_starts=independent_starts, short_video=short_video, on_error=on_error,
        seed=seed, crop_scale=crop_scale, crop_ratio=crop_ratio, flip_p=flip_p,
        color_jitter=color_jitter, color_jitter_p=color_jitter_p, grayscale_p=grayscale_p)
