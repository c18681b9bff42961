"""TAP-Vid point-tracking ground truth: reading the pickles, resizing, sampling the queries.

Benchmark: C. Doersch et al., "TAP-Vid: A Benchmark for Tracking Any Point in a Video",
NeurIPS 2022 Datasets and Benchmarks. The readers and query samplers follow the official
evaluation code (``google-deepmind/tapnet``, ``tapnet/tapvid/evaluation_datasets.py``:
``create_davis_dataset``, ``create_kinetics_dataset``, ``sample_queries_first``,
``sample_queries_strided``).

On-disk layouts read here:

- a **file** (``tapvid_davis.pkl``, also RoboTAP / RGB-stacking): a pickled dict
  ``video name -> {"video", "points", "occluded"}``, or a list of such dicts (named by their
  index);
- a **folder** (TAP-Vid-Kinetics as written by ``generate_tapvid.py``): every ``*.pkl`` in it,
  in name order, each a list (or dict) of such dicts; videos are named ``<file stem>/<index>``.

Each entry holds ``video``: uint8 ``(T, H, W, 3)`` (or a list of ``T`` encoded images, e.g. JPEG
bytes, as in the Kinetics pickles), ``points``: float ``(N, T, 2)`` ``(x, y)`` normalised to
``[0, 1]`` and ``occluded``: bool ``(N, T)``.

Coordinates: normalised ``(x, y)`` are scaled by ``(W, H)`` of the resized frames (256 x 256),
as the official reader does; ``(0, 0)`` is the top-left corner of the top-left pixel, so the
centre of pixel ``(row i, col j)`` is ``(j + 0.5, i + 0.5)``.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from levyjepa.core.errors import ConfigError

QUERY_MODES = ("first", "strided")
QUERY_STRIDE = 5
"""Frames between two query frames in ``strided`` mode (the official ``query_stride``)."""

LAYOUT = ("a pickle of {video name: {'video': uint8 (T, H, W, 3), 'points': float (N, T, 2) "
          "x, y in [0, 1], 'occluded': bool (N, T)}} (or a list of such dicts), or a folder of "
          "such pickles (TAP-Vid-Kinetics)")


@dataclass(frozen=True)
class TapVidVideo:
    """One annotated video as stored.

    Attributes:
        name: Video name (the dict key, or ``<file stem>/<index>``).
        video: uint8 ``(T, H, W, 3)`` frames.
        points: float32 ``(N, T, 2)`` ``(x, y)`` normalised to ``[0, 1]``.
        occluded: bool ``(N, T)``.
    """

    name: str
    video: np.ndarray
    points: np.ndarray
    occluded: np.ndarray


@dataclass(frozen=True)
class Queries:
    """The queries of one video and the ground truth each is scored against.

    Attributes:
        frame: int64 ``(Q,)`` query frame of each query.
        xy: float64 ``(Q, 2)`` ``(x, y)`` pixel position of each query in its frame.
        track: int64 ``(Q,)`` index of the stored track each query was taken from.
        target: float64 ``(Q, T, 2)`` ground-truth ``(x, y)`` pixel positions.
        occluded: bool ``(Q, T)`` ground-truth occlusion.
    """

    frame: np.ndarray
    xy: np.ndarray
    track: np.ndarray
    target: np.ndarray
    occluded: np.ndarray


def pickle_files(path: Path) -> list[Path]:
    """The pickles behind ``path``: the file itself, or a folder's ``*.pkl`` in name order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.glob("*.pkl") if p.is_file())
        if files:
            return files
        raise ConfigError(f"TAP-Vid folder {path} holds no *.pkl file; expected {LAYOUT}")
    raise ConfigError(f"TAP-Vid pickle {path} not found; expected {LAYOUT}")


def iter_videos(path: Path, *, names: Sequence[str] | None = None) -> Iterator[TapVidVideo]:
    """Read the videos of a TAP-Vid pickle (or folder of pickles), checked, in stored order.

    Args:
        path: ``tapvid_davis.pkl`` or a folder of pickles (see the module docstring).
        names: Only these videos (``None``: all); a name that is not found is an error, raised
            after the others have been yielded.

    Yields:
        :class:`TapVidVideo`, frames decoded when stored as encoded images.

    Raises:
        ConfigError: A missing or unreadable file, a malformed entry, an unknown name.
    """
    files = pickle_files(path)
    wanted = None if names is None else list(dict.fromkeys(names))
    found: set[str] = set()
    folder = len(files) > 1 or Path(path).is_dir()
    for file in files:
        for name, entry in _entries(file, prefix=f"{file.stem}/" if folder else ""):
            if wanted is not None and name not in wanted:
                continue
            found.add(name)
            yield _checked(file, name, entry)
    missing = [n for n in (wanted or []) if n not in found]
    if missing:
        raise ConfigError(f"TAP-Vid videos {missing} not found in {path}; expected {LAYOUT}")


def _entries(file: Path, *, prefix: str) -> list[tuple[str, object]]:
    try:
        with open(file, "rb") as f:
            data = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError,
            IndexError, ValueError, TypeError) as err:
        raise ConfigError(f"cannot read TAP-Vid pickle {file} ({type(err).__name__}: {err}); "
                          f"expected {LAYOUT}") from None
    if isinstance(data, dict):
        return [(f"{prefix}{k}", v) for k, v in data.items()]
    if isinstance(data, (list, tuple)):
        return [(f"{prefix}{i}", v) for i, v in enumerate(data)]
    raise ConfigError(f"TAP-Vid pickle {file} holds a {type(data).__name__}; expected {LAYOUT}")


def _checked(file: Path, name: str, entry: object) -> TapVidVideo:
    where = f"TAP-Vid pickle {file}, video {name!r}"
    if not isinstance(entry, dict) or not {"video", "points", "occluded"} <= set(entry):
        keys = sorted(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
        raise ConfigError(f"{where}: has {keys}, needs keys video, points, occluded; expected "
                          f"{LAYOUT}")
    video = entry["video"]
    if isinstance(video, (list, tuple)) and video and isinstance(video[0], (bytes, bytearray)):
        try:
            video = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in video])
        except (OSError, ValueError) as err:
            raise ConfigError(f"{where}: cannot decode its frames ({err}); expected {LAYOUT}"
                              ) from None
    video = np.asarray(video)
    points = np.asarray(entry["points"])
    occluded = np.asarray(entry["occluded"])
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or 0 in video.shape:
        raise ConfigError(f"{where}: video is {video.dtype} {video.shape}, expected {LAYOUT}")
    t = video.shape[0]
    if points.ndim != 3 or points.shape[1:] != (t, 2) or not np.issubdtype(points.dtype,
                                                                          np.floating):
        raise ConfigError(f"{where}: points is {points.dtype} {points.shape} for {t} frames, "
                          f"expected {LAYOUT}")
    if occluded.shape != points.shape[:2] or occluded.dtype not in (np.bool_, np.uint8):
        raise ConfigError(f"{where}: occluded is {occluded.dtype} {occluded.shape}, expected "
                          f"bool {points.shape[:2]}; {LAYOUT}")
    if not np.isfinite(points).all():
        raise ConfigError(f"{where}: points holds non-finite values; expected {LAYOUT}")
    return TapVidVideo(name, video, points.astype(np.float32), occluded.astype(bool))


def resize_video(video: np.ndarray, size: int) -> np.ndarray:
    """Frames resized to ``size x size`` with PIL's Lanczos filter, as ``mediapy.resize_video``.

    Args:
        video: uint8 ``(T, H, W, 3)``.
        size: Output side.

    Returns:
        uint8 ``(T, size, size, 3)`` (the input itself when it already has that size).
    """
    if video.shape[1:3] == (size, size):
        return video
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.LANCZOS))
                     for f in video])


def sample_queries(points: np.ndarray, occluded: np.ndarray, *, mode: str,
                   stride: int = QUERY_STRIDE) -> Queries:
    """Queries of one video as the official samplers make them.

    ``first``: each track that is visible somewhere is queried once, at its first visible
    frame (tracks never visible are dropped). ``strided``: at frames ``0, stride, 2 stride,
    ...``, every track visible there is queried (ordered by frame, then track), so a track
    yields several queries, tracked forward and backward.

    Args:
        points: ``(N, T, 2)`` ``(x, y)`` pixel positions.
        occluded: bool ``(N, T)``.
        mode: ``first`` or ``strided``.
        stride: Query stride of ``strided``.

    Returns:
        :class:`Queries`; empty (``Q = 0``) when no track is visible at a query frame.
    """
    if mode not in QUERY_MODES:
        raise ConfigError(f"query_mode must be one of {', '.join(QUERY_MODES)}, got {mode!r}")
    points = np.asarray(points, dtype=np.float64)
    occluded = np.asarray(occluded, dtype=bool)
    n, t = occluded.shape
    if mode == "first":
        track = np.flatnonzero((~occluded).any(axis=1))
        frame = np.argmax(~occluded[track], axis=1)
    else:
        pairs = [(f, k) for f in range(0, t, stride) for k in range(n) if not occluded[k, f]]
        frame = np.array([f for f, _ in pairs], dtype=np.int64)
        track = np.array([k for _, k in pairs], dtype=np.int64)
    frame, track = frame.astype(np.int64), track.astype(np.int64)
    return Queries(frame=frame, xy=points[track, frame].reshape(-1, 2), track=track,
                   target=points[track].reshape(-1, t, 2), occluded=occluded[track])
