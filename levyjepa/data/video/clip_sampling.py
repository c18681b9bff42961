"""Which frames of a video make a clip: length, stride or target frame rate, start, short videos.

A clip is ``frames_per_clip`` frames taken every ``step`` source frames from a start position.
The step is either a whole number of frames (``frame_step``) or follows from a target frame rate
and the file's own rate, ``step = video_fps / fps`` (a 29.97 fps file sampled at 10 fps steps
2.997 frames), in which case frame ``k`` of the clip is the source frame nearest to
``start + k * step``. The same clip therefore spans the same time in every file, whatever its
frame rate.

A video is *short* when it has fewer frames than a clip spans, ``(frames_per_clip - 1) * step +
1``. The clip then starts at frame 0 and the positions past the end follow ``short_video``:

- ``pad``: they repeat the last frame (the clip ends with a still);
- ``loop``: they wrap around to the start (the clip jumps back, like a looping GIF).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

SHORT_VIDEO_POLICIES = ("pad", "loop")
"""How positions past the end of a short video are filled."""


def clip_step(video_fps: float, *, frame_step: Optional[int], fps: Optional[float]) -> float:
    """Source frames between consecutive clip frames.

    Args:
        video_fps: The file's average frame rate.
        frame_step: A fixed step in source frames, or ``None`` to use ``fps``.
        fps: A target frame rate, or ``None`` to use ``frame_step``.

    Returns:
        ``frame_step``, or ``video_fps / fps``.

    Raises:
        ValueError: when both or neither are given, or a rate is not positive.
    """
    if (frame_step is None) == (fps is None):
        raise ValueError("give exactly one of frame_step and fps (set the other to null)")
    if fps is not None:
        if not video_fps > 0 or not math.isfinite(video_fps):
            raise ValueError(f"the video's frame rate must be a positive number, got {video_fps}")
        return float(video_fps) / float(fps)
    return float(frame_step)


def clip_span(frames_per_clip: int, step: float) -> float:
    """Source frames a clip covers from its first to its last position, plus one."""
    return (frames_per_clip - 1) * step + 1


def max_start(num_frames: int, frames_per_clip: int, step: float) -> float:
    """The last start position that keeps the clip inside the video (negative: short video)."""
    return num_frames - clip_span(frames_per_clip, step)


def clip_indices(
    num_frames: int,
    *,
    frames_per_clip: int,
    step: float,
    start: float,
    short_video: str = "pad",
) -> np.ndarray:
    """Source frame indices of one clip.

    Args:
        num_frames: Frames in the video (>= 1).
        frames_per_clip: Frames in the clip ``T``.
        step: Source frames between clip frames (> 0; need not be whole).
        start: Position of the first frame, in ``[0, max(0, max_start(...))]``; a short video
            always starts at 0.
        short_video: ``pad`` or ``loop``, for positions past the last frame.

    Returns:
        int64 ``(T,)`` indices in ``[0, num_frames)``.
    """
    if short_video not in SHORT_VIDEO_POLICIES:
        raise ValueError(f"short_video must be one of {', '.join(SHORT_VIDEO_POLICIES)}; "
                         f"got {short_video!r}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if max_start(num_frames, frames_per_clip, step) < 0:
        start = 0.0
    positions = start + step * np.arange(frames_per_clip, dtype=np.float64)
    # Nearest source frame; the small offset rounds exact halves up whatever the float error.
    index = np.floor(positions + 0.5 + 1e-9).astype(np.int64)
    if short_video == "loop":
        return index % num_frames
    return np.minimum(index, num_frames - 1)


def random_start(num_frames: int, *, frames_per_clip: int, step: float, u: float) -> float:
    """A uniform start position from a uniform number ``u`` in ``[0, 1)``.

    With a whole ``step`` the start is a whole frame, uniform over the valid starts.
    """
    last = max_start(num_frames, frames_per_clip, step)
    if last <= 0:
        return 0.0
    if float(step).is_integer():
        return float(min(int(u * (math.floor(last) + 1)), math.floor(last)))
    return u * last


def center_start(num_frames: int, *, frames_per_clip: int, step: float) -> float:
    """The start position that centres the clip in the video (0 for a short video).

    With a whole ``step`` the start is a whole frame (rounded down).
    """
    middle = max(0.0, max_start(num_frames, frames_per_clip, step) / 2)
    return float(math.floor(middle)) if float(step).is_integer() else middle
