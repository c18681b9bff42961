"""The ``torchcodec`` video backend: PyTorch's TorchCodec decoder behind the reader interface.

TorchCodec (``torchcodec.decoders.VideoDecoder``) decodes with the FFmpeg shared libraries of the
system (major versions 4 to 9), which it loads when it is imported or first asked to decode.
Without them it raises a page of tracebacks; :func:`torchcodec_problem` folds that into one line
naming the missing library and what to install, and ``backend="auto"`` then passes over it.

Frame numbering. The decoder is opened in its ``exact`` seek mode: it scans the packets once
and indexes every frame by its presentation timestamp, then serves an index by seeking to the
key frame before it and decoding up to that timestamp. That is exact when timestamps number the
frames, as in MP4/MOV and Matroska/WebM files. AVI files do not store presentation times:
FFmpeg derives them from the packet order, which for packed B-frames (MPEG-4 part 2, e.g.
Xvid/DivX) differs from the display order. On ``eye_makeup_mpeg4_audio.avi`` of the real test
clips, a read of every 4th frame from the start returned the frame before the one asked for in
39 of 40 places, and the last frame could not be read at all. For every container other than
MP4/MOV and Matroska/WebM (recognised by their first bytes), this reader therefore decodes from
the first frame and counts frames in the order they come out of the decoder, as PyAV's
sequential reading does, which gives exactly the frames of a sequential decode.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from levyjepa.data.video.video_readers import (
    StreamEndedEarly,
    VideoInput,
    source_name,
    unique_indices,
)

FFMPEG_HINT = ("install the FFmpeg 4-9 shared libraries (Debian/Ubuntu: apt-get install ffmpeg; "
               "conda: conda install ffmpeg) or choose data.backend=pyav")
"""How to give TorchCodec the FFmpeg it loads, in its one-line error."""

_MISSING_LIB = re.compile(r"(lib[\w+.-]+?\.so(?:\.\d+)*): cannot open shared object file")
"""A shared library the dynamic loader did not find, as ``dlopen`` words it."""
_SOURCE_PREFIX = re.compile(r"^\w+, \S+\.cpp:\d+, ")
"""The ``SingleStreamDecoder, /path/File.cpp:70, `` that starts TorchCodec's C++ errors."""
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
"""Types of a first box of an MP4/MOV (ISO base media) file, at bytes 4-8."""
_EBML = b"\x1a\x45\xdf\xa3"
"""The first four bytes of a Matroska/WebM file."""


def _missing_libraries(text: str) -> str:
    """The libraries a failed ``dlopen`` names in ``text``, with the major versions of one
    library joined: ``libavutil.so.56-61`` for the six FFmpeg versions TorchCodec tries."""
    versions: dict[str, list[int]] = {}
    for found in dict.fromkeys(_MISSING_LIB.findall(text)):
        stem, _, major = found.partition(".so.")
        stem = stem.removesuffix(".so")
        versions.setdefault(stem, [])
        if major.isdigit():
            versions[stem].append(int(major))
    parts = []
    for stem, majors in versions.items():
        majors.sort()
        if not majors:
            parts.append(f"{stem}.so")
        elif len(majors) > 1 and majors == list(range(majors[0], majors[-1] + 1)):
            parts.append(f"{stem}.so.{majors[0]}-{majors[-1]}")
        else:
            parts.extend(f"{stem}.so.{m}" for m in majors)
    return ", ".join(parts)


def _load_failure(text: str) -> str:
    """One line for TorchCodec's many-line report that its native libraries did not load."""
    missing = _missing_libraries(text)
    if missing.startswith(("libav", "libsw")):
        return f"torchcodec cannot load FFmpeg ({missing} not found): {FFMPEG_HINT}"
    if missing:
        return (f"torchcodec cannot load its libraries ({missing} not found): install the "
                "torchcodec build made for this torch (CPU-only torch: pip install torchcodec "
                "--index-url https://download.pytorch.org/whl/cpu) or choose data.backend=pyav")
    errors = [line.strip() for line in text.splitlines() if line.strip().startswith("OSError:")]
    detail = errors[-1].removeprefix("OSError:").strip() if errors else "no reason given"
    return (f"torchcodec cannot load its libraries ({detail[:160]}): install a torchcodec "
            "release made for this torch (its README's compatibility table) or choose "
            "data.backend=pyav")


@functools.cache
def torchcodec_problem() -> str | None:
    """Why the ``torchcodec`` backend cannot decode here, as one line, or ``None`` if it can.

    Cached per process (``torchcodec_problem.cache_clear()`` to look again).
    """
    try:
        import torchcodec
        from torchcodec.decoders import VideoDecoder
    except Exception as err:  # not installed, or a build that does not fit this torch
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        return (f"the package 'torchcodec' cannot be imported ({first}): pip install torchcodec "
                "(the levyjepa extra 'torchcodec') or choose data.backend=pyav")
    if getattr(torchcodec, "ffmpeg_major_version", None) is not None:
        return None  # FFmpeg loaded at import
    try:  # a decoder loads FFmpeg before it looks at the data; with FFmpeg, one byte is refused
        VideoDecoder(b"\0")
    except Exception as err:
        text = str(err)
        if "libtorchcodec" in text or _MISSING_LIB.search(text):
            return _load_failure(text)
    return None


def timestamps_number_frames(head: bytes) -> bool:
    """Whether a file starting with ``head`` (at least 8 bytes) is MP4/MOV or Matroska/WebM,
    the containers whose presentation timestamps number the frames."""
    return head[4:8] in _MP4_BOXES or head[:4] == _EBML


class TorchCodecReader:
    """A video opened with TorchCodec's ``VideoDecoder``; first video stream (FFmpeg's best).

    The frame count is that of the ``exact`` mode's scan of the packets; the frame rate is the
    header's average (the scanned content's when the header has none). MP4/MOV and
    Matroska/WebM files are read by seeking; other containers from the first frame (see the
    module docstring).

    Args:
        source: Video file, or its bytes.
        threads: FFmpeg decoder threads.
        name: What error messages call the video.

    Raises:
        ImportError: one line, when torchcodec or FFmpeg's libraries cannot be loaded.
    """

    def __init__(self, source: VideoInput, *, threads: int = 1, name: str | None = None
                 ) -> None:
        problem = torchcodec_problem()
        if problem is not None:
            raise ImportError(problem)
        from torchcodec.decoders import VideoDecoder

        label = source_name(source, name)
        if isinstance(source, bytes):
            data: Any = source
            head = source[:12]
        else:
            data = os.fspath(source)
            with open(data, "rb") as file:
                head = file.read(12)
        self._seekable = timestamps_number_frames(head)
        try:
            self._decoder: Any = VideoDecoder(data, seek_mode="exact",
                                              num_ffmpeg_threads=threads,
                                              dimension_order="NHWC")
        except RuntimeError as err:  # C++ errors start with the source file of the decoder
            first = (str(err).strip().splitlines() or [""])[0]
            raise RuntimeError(f"{label}: {_SOURCE_PREFIX.sub('', first)}") from err
        meta = self._decoder.metadata
        self.num_frames = int(meta.num_frames or 0)
        if self.num_frames <= 0:
            raise ValueError(f"{label}: no frames")
        fps = meta.average_fps_from_header or meta.average_fps
        if not fps:
            raise ValueError(f"{label}: unknown frame rate")
        self.fps = float(fps)

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices``, uint8 ``(len(indices), H, W, 3)``.

        Raises:
            StreamEndedEarly: when a file read from its first frame ends before a wanted
                index; it carries the count of frames decoded.
        """
        wanted, inverse = unique_indices(indices)
        if not wanted:
            raise ValueError("no frame indices to read")
        if wanted[0] < 0 or wanted[-1] >= self.num_frames:
            raise IndexError(f"frame indices {wanted[0]}..{wanted[-1]} outside "
                             f"0..{self.num_frames - 1}")
        if self._seekable:
            frames = self._decoder.get_frames_at(wanted).data.numpy()  # (T, H, W, 3)
            return frames[inverse]
        return np.stack(self._read_in_order(wanted))[inverse]

    def _read_in_order(self, wanted: list[int]) -> list[np.ndarray]:
        """Decode frames 0..``wanted[-1]`` one after the other; keep the wanted ones.

        Asked for the frame after the last one served, the decoder returns the next frame it
        decodes without seeking, so the k-th call returns the k-th frame in display order.
        """
        keep, frames = set(wanted), []
        for index in range(wanted[-1] + 1):
            try:
                frame = self._decoder.get_frame_at(index).data
            except (RuntimeError, IndexError):
                raise StreamEndedEarly(index) from None
            if index in keep:
                frames.append(frame.numpy())
        return frames

    def close(self) -> None:
        self._decoder = None

    def __enter__(self) -> TorchCodecReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
