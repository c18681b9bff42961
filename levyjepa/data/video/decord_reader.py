"""The ``decord`` backend of :mod:`levyjepa.data.video.video_readers`.

decord builds a frame index when a file is opened and seeks to the nearest key frame for each
batch of indices. Its own logging is kept off the terminal: its FFmpeg messages are silenced,
and the C++ ``ERROR opening`` line it writes to file descriptor 2 when a file does not open is
folded into the exception instead, so an unreadable file is reported once, as one line.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from levyjepa.data.video.video_readers import VideoInput, source_name, unique_indices

T = TypeVar("T")
_NATIVE_LOG = re.compile(r"^\[[\d:]+\] \S+:\d+: |^\[[\w,]+ @ 0x[0-9a-f]+\] ")
"""A line of decord's C++ log (``[12:00:00] file.cc:83: ...``) or FFmpeg's (``[mov @ 0x1f] ..``)."""
_FD2_LOCK = threading.Lock()  # one redirection of file descriptor 2 at a time per process


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



class DecordReader:
    """A video opened with ``decord.VideoReader`` (random access from its frame index).

    Args:
        source: Video file, or its bytes.
        threads: Decoder threads.
        name: What error messages call the video.
    """

    def __init__(self, source: VideoInput, *, threads: int = 1, name: str | None = None
                 ) -> None:
        import decord

        decord.logging.set_level(decord.logging.QUIET)
        in_memory = isinstance(source, bytes)
        uri: Any = io.BytesIO(source) if in_memory else os.fspath(source)
        try:
            self._reader: Any = _native_log_held(
                lambda: decord.VideoReader(uri, ctx=decord.cpu(0), num_threads=threads))
        except Exception as err:
            if not in_memory:
                raise
            # decord's native line quotes the bytes themselves (or fails to decode them as
            # text): keep only FFmpeg's reason, after the last comma
            text = str(err)
            reason = (text.rsplit(", ", 1)[-1].rstrip(")") if text.endswith(")") and ", " in text
                      else "not a video decord can open")
            raise RuntimeError(f"Error reading {source_name(source, name)}... ({reason})"
                               ) from err
        self.num_frames = len(self._reader)
        self.fps = float(self._reader.get_avg_fps())

    def read(self, indices: Sequence[int]) -> np.ndarray:
        wanted, inverse = unique_indices(indices)
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
