"""Video decoding backends: PyAV, TorchCodec and decord behind one small reader interface.

A reader is opened on one video, a file or its bytes in memory (e.g. a member of a tar shard),
tells its frame count and frame rate, and returns the frames at given indices as uint8 RGB
``(T, H, W, 3)``. Readers are cheap to open and are opened where they are used (inside each
data-loader worker, per item) and closed at once: a decoder's state is never shared across
forked processes.

- ``torchcodec`` (PyTorch's TorchCodec, ``torchcodec.decoders.VideoDecoder``): opened in its
  ``exact`` seek mode, which scans the file's packets once to index every frame, then seeks to
  the key frame before each wanted frame. It uses the FFmpeg shared libraries (major versions
  4 to 9) of the system; without them it fails with one line that says what to install
  (:func:`~levyjepa.data.video.torchcodec_reader.torchcodec_problem`).
- ``pyav`` (FFmpeg through PyAV): decodes sequentially and counts frames, which is always right,
  even for AVI files with packed B-frames whose timestamps come out of order. For MP4/MOV and
  Matroska/WebM, whose timestamps are reliable, a clip that starts far into the file is reached
  by seeking to the key frame before it and numbering the frames from their timestamps (checked
  to increase; any doubt falls back to sequential decoding).
- ``decord`` (``decord.VideoReader``): builds a frame index when opened and seeks to the nearest
  key frame for each batch of indices. It is not frame-accurate on AVI files with packed
  B-frames: a read that seeks to the last frame of ``eye_makeup_mpeg4_audio.avi`` returns an
  earlier frame in about one read in five; it fails on some small frame widths (16 and
  48 px). Its last release dates from 2021.

``backend="auto"`` tries the backends in :data:`AUTO_ORDER` (the figures behind the order are
there), skipping those that cannot be imported or, for TorchCodec, cannot load FFmpeg; when the
first cannot read a file, the next one is tried before the file is declared unreadable.

Decord's own logging is kept off the terminal: its FFmpeg messages are silenced, and the C++
``ERROR opening`` line it writes to file descriptor 2 when a file does not open is folded into
the exception instead, so an unreadable file is reported once, as one line.
"""

from __future__ import annotations

import importlib.util
import io
import os
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Protocol, Union

import numpy as np

BACKENDS = ("decord", "pyav", "torchcodec")
"""Decoding backends by name."""

PACKAGES = {"decord": "decord", "pyav": "av", "torchcodec": "torchcodec"}
"""The Python package each backend imports."""

VideoInput = Union[str, "os.PathLike[str]", bytes]
"""A video: the path of its file, or the whole file's bytes in memory (e.g. a tar member)."""

AUTO_ORDER = ("pyav", "torchcodec", "decord")
"""Order in which ``backend="auto"`` tries the backends: PyAV, then TorchCodec, then decord.

Measured with ``OMP_NUM_THREADS=1 python benchmarks/decode.py --workers 0 --clips 100
--repeats 3`` (16 frames every 4th from a random start, one file opened per clip, decoded in
one process; medians of 3 rounds that alternate the backends) on 2 CPU cores (x86-64) shared
with other jobs (load average 2-5), torch 2.14.1, av 18.1.0 (its own FFmpeg, libavcodec 62),
decord 0.6.0, torchcodec 0.17.0 on the system's FFmpeg 5.1. The decoding cost in CPU ms per
clip (wall-clock rates moved by up to 2x between runs under the other jobs' load):

- the five real test clips: PyAV 75.6, TorchCodec 67.4, decord 72.1 (from the files); 68.4,
  64.3 and 68.2 from their bytes in memory (``--in-memory``);
- their four H.264 MP4s alone: PyAV 79.2, TorchCodec 72.8, decord 79.9;
- their MPEG-4 part 2 AVI alone: PyAV 16.2, TorchCodec 19.7 (decoded from the first frame, see
  below), decord 22.4;
- the small files the tests write (48x64 px, 24-60 frames, ``--frames-per-clip 8
  --frame-step 2``): PyAV 3.7, TorchCodec 1.8, decord 3.9 (the cost of opening a file).

So TorchCodec costs about 8 % less than PyAV on the MP4s and 22 % more on the AVI. PyAV numbers
every frame of every file tried exactly like a sequential decode (``tests/test_video_readers.py``
and the real clips). TorchCodec does too, but cannot decode the last frame of an AVI with
B-frames (it reports the stream one frame short, so clips are drawn from the others) and needs
the system's FFmpeg libraries; decord seeks to wrong frames in AVI files with B-frames (13 of
the 15 frames of a read of every 4th frame of a test-written file) and has had no release
since 2021. The exact, self-contained PyAV stays first; TorchCodec, maintained and exact, is
the first fallback; decord comes last."""

SEEK_FORMATS = ("mov", "mp4", "matroska", "webm")
"""Container formats (FFmpeg demuxer names) whose timestamps PyAV may number frames from."""

SEEK_MIN_FRAME = 48
"""PyAV seeks only when the first wanted frame is at least this far in (else decodes from 0)."""



class VideoReader(Protocol):
    """What every backend's reader offers (a context manager closing the file)."""

    num_frames: int
    fps: float

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed), uint8 ``(len(indices), H, W, 3)``."""
        ...

    def close(self) -> None:
        """Release the file and the decoder."""
        ...

    def __enter__(self) -> VideoReader: ...

    def __exit__(self, *exc: object) -> None: ...


class StreamEndedEarly(Exception):
    """The file holds fewer decodable frames than its header says.

    Attributes:
        frames: Number of frames actually decoded.
    """

    def __init__(self, frames: int) -> None:
        super().__init__(f"the stream ended after {frames} frames")
        self.frames = frames


def source_name(source: VideoInput, name: str | None = None) -> str:
    """How errors name a video: ``name`` if given (e.g. a shard member's), else the path, or
    ``<N bytes in memory>`` for bytes."""
    if name is not None:
        return name
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes in memory>"
    return os.fspath(source)


def _usable(backend: str) -> bool:
    if backend == "torchcodec":
        from levyjepa.data.video.torchcodec_reader import torchcodec_problem

        return torchcodec_problem() is None
    return importlib.util.find_spec(PACKAGES[backend]) is not None


def available_backends() -> tuple[str, ...]:
    """The backends usable here, in :data:`AUTO_ORDER`: the package imports and, for
    TorchCodec, FFmpeg's libraries load."""
    return tuple(b for b in AUTO_ORDER if _usable(b))


def backend_order(backend: str) -> tuple[str, ...]:
    """The backends to try, in order, for a ``backend`` setting.

    Args:
        backend: ``auto``, ``decord``, ``pyav`` or ``torchcodec``.

    Returns:
        ``(backend,)`` for an explicit choice, the available backends for ``auto``.

    Raises:
        ValueError: for an unknown name, or when the chosen (or every) backend is missing; one
            line naming what is missing and how to install it.
    """
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be one of auto, {', '.join(BACKENDS)}; got {backend!r}")
    found = available_backends()
    if backend == "auto":
        if not found:
            raise ValueError("backend=auto: none of av (PyAV), decord and torchcodec (with "
                             "FFmpeg) can be imported; pip install av")
        return found
    if backend == "torchcodec" and backend not in found:
        from levyjepa.data.video.torchcodec_reader import torchcodec_problem

        raise ValueError(f"backend=torchcodec: {torchcodec_problem()}")
    if backend not in found:
        raise ValueError(f"backend={backend}: the package '{PACKAGES[backend]}' cannot be "
                         f"imported; available: {', '.join(found) or 'none'}")
    return (backend,)


def open_video(source: VideoInput, backend: str, *, threads: int = 1,
               name: str | None = None) -> VideoReader:
    """Open a video with one backend (``decord``, ``pyav`` or ``torchcodec``).

    Args:
        source: The video file's path, or the whole file's bytes (e.g. a tar shard's member).
        backend: ``decord``, ``pyav`` or ``torchcodec``.
        threads: Decoder threads (1: the loader's workers are the parallelism).
        name: What error messages call the video (default: the path, or
            ``<N bytes in memory>``).

    Raises:
        Exception: whatever the backend raises for an unreadable video.
    """
    if isinstance(source, bytearray):
        source = bytes(source)
    if backend == "decord":
        from levyjepa.data.video.decord_reader import DecordReader

        return DecordReader(source, threads=threads, name=name)
    if backend == "pyav":
        return PyAVReader(source, threads=threads, name=name)
    if backend == "torchcodec":
        from levyjepa.data.video.torchcodec_reader import TorchCodecReader

        return TorchCodecReader(source, threads=threads, name=name)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")


def unique_indices(indices: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """Sorted distinct indices and, for each requested index, its row among them."""
    wanted, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
    return wanted.tolist(), inverse


class PyAVReader:
    """A video opened with PyAV (FFmpeg); first video stream, other streams ignored.

    The frame count is the container's (``stream.frames``) or, when the container does not
    store it, the duration times the average frame rate.

    Args:
        source: Video file, or its bytes.
        threads: Decoder threads.
        name: What error messages call the video.
    """

    def __init__(self, source: VideoInput, *, threads: int = 1, name: str | None = None
                 ) -> None:
        import av

        path = source_name(source, name)
        if isinstance(source, bytes):
            buffer = io.BytesIO(source)
            buffer.name = path  # what PyAV's errors call the file
            self._container: Any = av.open(buffer)
        else:
            self._container = av.open(os.fspath(source))
        try:
            if not self._container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = self._container.streams.video[0]
            stream.codec_context.thread_count = threads
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not rate:
                raise ValueError(f"{path}: unknown frame rate")
            self._rate = Fraction(rate)
            self._stream = stream
            count = int(stream.frames or 0)
            if count <= 0:
                duration = (stream.duration * stream.time_base if stream.duration
                            else Fraction(self._container.duration or 0, 1_000_000))
                count = round(duration * self._rate)
            if count <= 0:
                raise ValueError(f"{path}: no frames")
            self.num_frames = count
            self.fps = float(self._rate)
            names = set(self._container.format.name.split(","))
            self._seekable = bool(names & set(SEEK_FORMATS)) and stream.time_base is not None
        except Exception:
            self._container.close()
            raise

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices``.

        Raises:
            StreamEndedEarly: when a wanted index lies beyond the last decodable frame (the
                header overstated the length); it carries the real count.
        """
        wanted, inverse = unique_indices(indices)
        if not wanted:
            raise ValueError("no frame indices to read")
        if wanted[0] < 0:
            raise IndexError(f"negative frame index {wanted[0]}")
        frames = None
        if self._seekable and wanted[0] >= SEEK_MIN_FRAME:
            frames = self._read_after_seek(wanted)
        if frames is None:
            frames = self._read_sequential(wanted)
        return np.stack([frames[i] for i in wanted])[inverse]

    def _read_sequential(self, wanted: list[int]) -> dict[int, np.ndarray]:
        self._container.seek(0)
        keep, last = set(wanted), wanted[-1]
        frames: dict[int, np.ndarray] = {}
        count = 0
        for index, frame in enumerate(self._container.decode(self._stream)):
            count = index + 1
            if index in keep:
                frames[index] = frame.to_ndarray(format="rgb24")
            if index >= last:
                break
        if len(frames) < len(keep):
            raise StreamEndedEarly(count)
        return frames

    def _read_after_seek(self, wanted: list[int]) -> dict[int, np.ndarray] | None:
        """Seek to the key frame before ``wanted[0]``; ``None`` when timestamps are not usable."""
        stream, start = self._stream, self._stream.start_time or 0
        base = Fraction(stream.time_base)
        target = start + int(Fraction(wanted[0]) / self._rate / base)
        self._container.seek(target, stream=stream, backward=True, any_frame=False)
        keep, last = set(wanted), wanted[-1]
        frames: dict[int, np.ndarray] = {}
        previous = -1
        for frame in self._container.decode(stream):
            if frame.pts is None:
                return None
            index = round((frame.pts - start) * base * self._rate)
            if index <= previous or (previous < 0 and index > wanted[0]):
                return None  # out-of-order timestamps, or the seek went past the first frame
            previous = index
            if index in keep:
                frames[index] = frame.to_ndarray(format="rgb24")
            if index >= last:
                break
        if len(frames) < len(keep):
            return None  # let the sequential decode find the real end of the stream
        return frames

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> PyAVReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
