"""Video decoding backends: decord and PyAV behind one small reader interface.

A reader is opened on one file, tells its frame count and frame rate, and returns the frames at
given indices as uint8 RGB ``(T, H, W, 3)``. Readers are cheap to open and are opened where they
are used (inside each data-loader worker, per item) and closed at once: a decoder's state is
never shared across forked processes.

- ``decord`` (``decord.VideoReader``): builds a frame index when opened and seeks to the nearest
  key frame for each batch of indices. On the four MP4 clips of our real test clips its
  frames equal those of a sequential PyAV decode in every read tried.
- ``pyav`` (FFmpeg through PyAV): decodes sequentially and counts frames, which is always right,
  even for AVI files with packed B-frames whose timestamps come out of order. For MP4/MOV and
  Matroska/WebM, whose timestamps are reliable, a clip that starts far into the file is reached
  by seeking to the key frame before it and numbering the frames from their timestamps (checked
  to increase; any doubt falls back to sequential decoding).

Decord is not frame-accurate on AVI files with packed B-frames: a read that seeks to the last
frame of ``eye_makeup_mpeg4_audio.avi`` returns an earlier frame in about one read in five.

``backend="auto"`` tries the backends in :data:`AUTO_ORDER` (PyAV, then decord; the figures
behind the choice are there), skipping those that cannot be imported; when the first cannot
read a file, the next one is tried before the file is declared unreadable.

Decord's own logging is kept off the terminal: its FFmpeg messages are silenced, and the C++
``ERROR opening`` line it writes to file descriptor 2 when a file does not open is folded into
the exception instead, so an unreadable file is reported once, as one line.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, Protocol, TypeVar

import numpy as np

BACKENDS = ("decord", "pyav")
"""Decoding backends by name."""

AUTO_ORDER = ("pyav", "decord")
"""Order in which ``backend="auto"`` tries the backends. The two decode the shared clips at the
same speed, so the exact one comes first: ``benchmarks/decode.py`` on the five clips of
our five real test clips (16 frames every 4th from a random start, one file opened per clip;
2-core CPU shared with other jobs, load average 1-5; medians of 3 interleaved rounds) measured
the decoding cost in one process at 78.6 and 87.3 CPU ms per clip for decord against 76.3 and
85.2 for PyAV (12.5 clips/s, 200 frames/s, each), and wall-clock rates that put either ahead by
up to 60 % from one run to the next (e.g. 2 loader workers: decord 10.0-14.7 clips/s, PyAV
8.7-11.8). PyAV numbers frames exactly on every file tried; decord returns a wrong last frame
on AVI with packed B-frames (above) and fails on some small frame widths (16 and 48 px), so it
is the fallback."""

SEEK_FORMATS = ("mov", "mp4", "matroska", "webm")
"""Container formats (FFmpeg demuxer names) whose timestamps PyAV may number frames from."""

SEEK_MIN_FRAME = 48
"""PyAV seeks only when the first wanted frame is at least this far in (else decodes from 0)."""

T = TypeVar("T")
_NATIVE_LOG = re.compile(r"^\[[\d:]+\] \S+:\d+: |^\[[\w,]+ @ 0x[0-9a-f]+\] ")
"""A line of decord's C++ log (``[12:00:00] file.cc:83: ...``) or FFmpeg's (``[mov @ 0x1f] ..``)."""
_FD2_LOCK = threading.Lock()  # one redirection of file descriptor 2 at a time per process


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


def available_backends() -> tuple[str, ...]:
    """The backends whose package can be imported here, in :data:`AUTO_ORDER`."""
    modules = {"decord": "decord", "pyav": "av"}
    return tuple(b for b in AUTO_ORDER if importlib.util.find_spec(modules[b]) is not None)


def backend_order(backend: str) -> tuple[str, ...]:
    """The backends to try, in order, for a ``backend`` setting.

    Args:
        backend: ``auto``, ``decord`` or ``pyav``.

    Returns:
        ``(backend,)`` for an explicit choice, the available backends for ``auto``.

    Raises:
        ValueError: for an unknown name, or when the chosen (or every) backend is missing.
    """
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be one of auto, {', '.join(BACKENDS)}; got {backend!r}")
    found = available_backends()
    if backend == "auto":
        if not found:
            raise ValueError("backend=auto: neither decord nor av (PyAV) can be imported")
        return found
    if backend not in found:
        package = {"decord": "decord", "pyav": "av"}[backend]
        raise ValueError(f"backend={backend}: the package '{package}' cannot be imported; "
                         f"available: {', '.join(found) or 'none'}")
    return (backend,)


def _native_log_held(fn: Callable[[], T]) -> T:
    """``fn()`` with file descriptor 2 sent to a temporary file while it runs.

    If ``fn`` raises, the last line native code logged is added to the error (a
    ``RuntimeError``, one line) and the other lines are passed on to stderr; if it returns,
    everything is passed on (nothing written meanwhile, by another thread, is lost).
    """
    failure: Exception | None = None
    with _FD2_LOCK, tempfile.TemporaryFile() as held:
        if sys.stderr is not None:
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no file descriptor 2 to hold
            return fn()
        os.dup2(held.fileno(), 2)
        try:
            result = fn()
        except Exception as err:
            failure = err
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        lines = held.read().decode(errors="replace").splitlines(keepends=True)
    native = [line for line in lines if failure is not None and _NATIVE_LOG.match(line)]
    passed_on = "".join(line for line in lines if line not in native)
    if passed_on and sys.stderr is not None:
        sys.stderr.write(passed_on)
    if failure is None:
        return result
    first = (str(failure).strip().splitlines() or [""])[0]
    detail = f" ({_NATIVE_LOG.sub('', native[-1]).strip()})" if native else ""
    raise RuntimeError(first + detail) from failure


def open_video(path: str, backend: str, *, threads: int = 1) -> VideoReader:
    """Open ``path`` with one backend (``decord`` or ``pyav``).

    Args:
        path: Video file.
        backend: ``decord`` or ``pyav``.
        threads: Decoder threads (1: the loader's workers are the parallelism).

    Raises:
        Exception: whatever the backend raises for an unreadable file.
    """
    if backend == "decord":
        return DecordReader(path, threads=threads)
    if backend == "pyav":
        return PyAVReader(path, threads=threads)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")


def _unique(indices: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """Sorted distinct indices and, for each requested index, its row among them."""
    wanted, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
    return wanted.tolist(), inverse


class DecordReader:
    """A file opened with ``decord.VideoReader`` (frame-accurate random access).

    Args:
        path: Video file.
        threads: Decoder threads.
    """

    def __init__(self, path: str, *, threads: int = 1) -> None:
        import decord

        decord.logging.set_level(decord.logging.QUIET)
        self._reader: Any = _native_log_held(
            lambda: decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads))
        self.num_frames = len(self._reader)
        self.fps = float(self._reader.get_avg_fps())

    def read(self, indices: Sequence[int]) -> np.ndarray:
        wanted, inverse = _unique(indices)
        if wanted and (wanted[0] < 0 or wanted[-1] >= self.num_frames):
            raise IndexError(f"frame indices {wanted[0]}..{wanted[-1]} outside "
                             f"0..{self.num_frames - 1}")
        frames = self._reader.get_batch(wanted).asnumpy()
        return frames[inverse]

    def close(self) -> None:
        self._reader = None

    def __enter__(self) -> DecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PyAVReader:
    """A file opened with PyAV (FFmpeg); first video stream, other streams ignored.

    The frame count is the container's (``stream.frames``) or, when the container does not
    store it, the duration times the average frame rate.

    Args:
        path: Video file.
        threads: Decoder threads.
    """

    def __init__(self, path: str, *, threads: int = 1) -> None:
        import av

        self._container: Any = av.open(path)
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
        wanted, inverse = _unique(indices)
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
