"""Progress bars that suit where the output goes: every tqdm bar of the package is made here.

The policy (:func:`progress_bar`):

- on a terminal (the stream is a TTY) or in a notebook: tqdm bars, as usual; a ``transient``
  bar (the test-set pass of the online probe, feature extraction) is erased when it ends;
- elsewhere (stderr redirected to a log file, a pipe, a job scheduler's output): a bar opened
  while another one is open (the online probe's evaluation inside the training bar) shows
  nothing, and any other bar is a plain line ``desc: n/total [elapsed, rate] key=value ...``
  when it starts, at most every :data:`LOG_INTERVAL_S` seconds, and when it ends. No carriage
  return and no cursor-movement escape code (``\\x1b[``) is written, so a log file reads as
  text.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Optional, TextIO

from tqdm.asyncio import tqdm as _console_tqdm
from tqdm.auto import tqdm as _auto_tqdm

LOG_INTERVAL_S = 30.0
"""Seconds between two lines of a bar when the output is not a terminal."""

_NOTEBOOK = _auto_tqdm is not _console_tqdm  # tqdm.auto picked notebook widgets
_OPEN: weakref.WeakSet[LogLines] = weakref.WeakSet()  # plain reports not closed yet


def is_terminal(stream: Optional[TextIO] = None) -> bool:
    """Whether ``stream`` (default ``sys.stderr``) is an open TTY."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def progress_bar(iterable: Optional[Iterable[Any]] = None, *, desc: str = "",
                 total: Optional[int] = None, initial: int = 0, enable: bool = True,
                 transient: bool = False, stream: Optional[TextIO] = None,
                 interval_s: float = LOG_INTERVAL_S) -> Any:
    """A progress bar over ``iterable`` (or updated by hand with ``update(n)``).

    The object returned supports iteration, ``update``, ``set_postfix`` and ``close`` (and
    ``with``), whatever kind of output it writes.

    Args:
        iterable: What to iterate over, or ``None`` for a bar advanced with ``update``.
        desc: The label.
        total: Number of items (default: ``len(iterable)`` when it has one).
        initial: The count to start from (a resumed run).
        enable: ``False``: no output at all.
        transient: Erased when it ends, on a terminal (elsewhere: the same as any bar).
        stream: Where to write (default ``sys.stderr``).
        interval_s: Seconds between two plain lines when ``stream`` is not a terminal.
    """
    if enable and (_NOTEBOOK or is_terminal(stream)):
        return _auto_tqdm(iterable, desc=desc, total=total, initial=initial,
                          leave=not transient, dynamic_ncols=True, file=stream)
    if not enable or any(not bar.closed for bar in _OPEN):  # off, or inside another bar
        return _console_tqdm(iterable, total=total, disable=True)
    return LogLines(iterable, desc=desc, total=total, initial=initial,
                    stream=sys.stderr if stream is None else stream, interval_s=interval_s)


class LogLines:
    """A progress report for a log file: one plain line now and then, never a carriage return.

    Args:
        iterable: What to iterate over, or ``None`` (then call :meth:`update`).
        desc: The label at the start of every line.
        total: Number of items (default: ``len(iterable)`` when it has one).
        initial: The count to start from.
        stream: Where the lines go.
        interval_s: At most one line per this many seconds (besides the first and the last).
    """

    def __init__(self, iterable: Optional[Iterable[Any]] = None, *, desc: str = "",
                 total: Optional[int] = None, initial: int = 0, stream: TextIO,
                 interval_s: float = LOG_INTERVAL_S) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.desc, self.total = iterable, desc, total
        self.n = self._initial = initial
        self._stream, self._interval = stream, interval_s
        self._postfix: dict[str, str] = {}
        self.closed = False
        self._start = self._last = time.monotonic()
        self._write()
        _OPEN.add(self)

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress report has no iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Advance the count by ``n``; writes a line when the last one is old enough."""
        self.n += n
        if not self.closed and time.monotonic() - self._last >= self._interval:
            self._write()

    def set_postfix(self, ordered_dict: Optional[Mapping[str, Any]] = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        """Values shown at the end of the following lines (``refresh`` is accepted, unused)."""
        self._postfix = {str(k): str(v) for k, v in {**(ordered_dict or {}), **kwargs}.items()}

    def close(self) -> None:
        """Write the final line (once)."""
        if not self.closed:
            self._write()
            self.closed = True
            _OPEN.discard(self)

    def line(self) -> str:
        """The current state as one line, without the newline."""
        elapsed = time.monotonic() - self._start
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc}: {count} [{_console_tqdm.format_interval(elapsed)}, {rate:.2f} it/s]"
        if self._postfix:
            text += " " + " ".join(f"{k}={v}" for k, v in self._postfix.items())
        return text

    def _write(self) -> None:
        self._last = time.monotonic()
        try:
            self._stream.write(self.line() + "\n")
            self._stream.flush()
        except ValueError:  # the stream was closed (interpreter shutdown): nothing to report
            pass
