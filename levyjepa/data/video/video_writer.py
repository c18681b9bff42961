"""Write frames to a video file with PyAV (FFmpeg): generated data sets and test fixtures."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

CODECS = {"libx264": "yuv420p", "mpeg4": "yuv420p"}
"""Encoders this writer uses and their pixel format: H.264 (for ``.mp4``) and MPEG-4 part 2
(for ``.avi``), both with 4:2:0 chroma, which needs even frame sides."""


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    *,
    fps: float | Fraction = 30,
    codec: str = "libx264",
    crf: int = 18,
) -> None:
    """Encode uint8 RGB frames ``(T, H, W, 3)`` into ``path`` (container from the extension).

    Args:
        path: Output file, e.g. ``clip.mp4`` or ``clip.avi``.
        frames: uint8 ``(T, H, W, 3)``, ``H`` and ``W`` even.
        fps: Frame rate; pass ``Fraction(30000, 1001)`` for NTSC's 29.97 (a float is turned into
            the nearest fraction with a denominator up to 1001).
        codec: ``libx264`` or ``mpeg4``.
        crf: H.264 constant rate factor (0 lossless in luma, 18 visually lossless, 23 default).

    Raises:
        ValueError: naming the invalid argument.
    """
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"frames must be uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} "
                         f"{frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"frame sides must be even for 4:2:0 video, got {height}x{width}")
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}; got {codec!r}")
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = CODECS[codec]
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        else:
            stream.bit_rate = 8_000_000  # near-lossless for small frames
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
