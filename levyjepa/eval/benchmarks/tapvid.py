"""TAP-Vid point tracking with a feature function, scored as the official evaluation scores it.

Benchmark: C. Doersch et al., "TAP-Vid: A Benchmark for Tracking Any Point in a Video",
NeurIPS 2022 Datasets and Benchmarks (official code: ``google-deepmind/tapnet``,
``tapnet/tapvid/evaluation_datasets.py``). Protocol:

1. each video's frames are resized to ``resize x resize`` (256, Lanczos) and the ground truth
   scaled to those pixels (:mod:`levyjepa.eval.benchmarks.tapvid_data`);
2. queries: ``first`` (each track at its first visible frame) or ``strided`` (every visible
   track at frames 0, 5, 10, ...);
3. the feature function maps the frames to a token field ``(T, h, w, C)``, taken to tile the
   whole frame; each query is matched independently in every frame by
   :func:`levyjepa.eval.tracking.track_points` (its descriptor: the bilinear sample of the
   L2-normalised field at the query position in the query frame; in every frame the cosine
   similarity to every token, ``soft_argmax`` over the 3 x 3 tokens around the best one,
   temperature 0.05; occluded where the best similarity is below ``visibility_threshold``,
   0.5). Matching is per frame, so tracking backward (``strided``) needs nothing more. At its
   own query frame a query is the query point, visible (that frame is never scored);
4. metrics (:mod:`levyjepa.eval.benchmarks.tapvid_metrics`) in the pixels of the 256 x 256
   frame, per video, then the mean over videos.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from levyjepa.core.atomic import atomic_write_bytes, atomic_write_json
from levyjepa.core.errors import ConfigError
from levyjepa.core.progress import progress_bar
from levyjepa.eval.benchmarks.tapvid_data import (
    QUERY_MODES,
    iter_videos,
    resize_video,
    sample_queries,
)
from levyjepa.eval.benchmarks.tapvid_metrics import mean_over_videos, tapvid_metrics
from levyjepa.eval.tracking import METHODS, track_points

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
"""``features(frames)``: float32 ``(n, 3, H, W)`` in ``[0, 1]`` -> ``(n, h, w, C)``."""
METRIC_SIZE = 256
"""Side of the frame the official metrics' pixel thresholds refer to."""
RESULTS_FILE = "tapvid_metrics.json"
PICTURE = Path("pictures") / "tapvid_tracks.png"
PICTURE_TRACKS = 12
"""Queries drawn in the picture (the first ones of the first video)."""


@torch.no_grad()
def video_field(features: FeatureFn, video: np.ndarray, *, batch_size: int = 16) -> torch.Tensor:
    """The token field of a video, a batch of frames at a time.

    Args:
        features: The feature function.
        video: uint8 ``(T, H, W, 3)``.
        batch_size: Frames per call of ``features``.

    Returns:
        float ``(T, h, w, C)`` on the device ``features`` returns.
    """
    chunks = []
    for start in range(0, len(video), batch_size):
        frames = torch.from_numpy(np.ascontiguousarray(video[start:start + batch_size]))
        out = features(frames.permute(0, 3, 1, 2).float() / 255)
        if not isinstance(out, torch.Tensor) or out.ndim != 4 or len(out) != len(frames) or \
                not out.is_floating_point() or 0 in out.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(f"features must map ({len(frames)}, 3, H, W) frames to a float "
                              f"({len(frames)}, h, w, C) field, got {shape}")
        chunks.append(out)
    return torch.cat(chunks)


def track_queries(field: torch.Tensor, query_frame: np.ndarray, query_xy: np.ndarray, *,
                  frame_size: tuple[int, int], method: str = "soft_argmax",
                  temperature: float = 0.05, window: int | None = None,
                  visibility_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Track queries posed at any frame through a video by matching their features.

    Each query frame's queries go to :func:`levyjepa.eval.tracking.track_points` with that
    frame put first, in token units (``patch = 1``): the ``h x w`` grid tiles the
    ``H x W`` frame, token ``(r, c)`` centred at pixel ``((c + 0.5) W / w, (r + 0.5) H / h)``.

    Args:
        field: float ``(T, h, w, C)`` token field.
        query_frame: int ``(Q,)`` query frames.
        query_xy: ``(Q, 2)`` ``(x, y)`` pixel positions in their query frames.
        frame_size: ``(H, W)`` of the frames the pixels refer to.
        method, temperature, window, visibility_threshold: Those of ``track_points``.

    Returns:
        float64 ``(Q, T, 2)`` predicted pixel tracks and bool ``(Q, T)`` predicted occlusion.
    """
    t, h, w, _ = field.shape
    frames = np.asarray(query_frame, dtype=np.int64)
    xy = np.asarray(query_xy, dtype=np.float64).reshape(-1, 2)
    to_grid = np.array([w / frame_size[1], h / frame_size[0]])
    tracks = np.zeros((len(xy), t, 2))
    occluded = np.zeros((len(xy), t), dtype=bool)
    for q in np.unique(frames):
        idx = np.flatnonzero(frames == q)
        grid_xy = np.clip(xy[idx] * to_grid, 0, [w, h])
        sub = torch.cat([field[int(q):int(q) + 1], field])
        pred, vis = track_points(sub, torch.from_numpy(grid_xy).to(field), patch=1,
                                 method=method, temperature=temperature, window=window,
                                 return_visibility=True,
                                 visibility_threshold=visibility_threshold)
        tracks[idx] = pred[:, 1:].double().cpu().numpy() / to_grid
        occluded[idx] = ~vis[:, 1:].cpu().numpy()
        tracks[idx, q] = xy[idx]
        occluded[idx, q] = False
    return tracks, occluded


def evaluate_tapvid(
    features: FeatureFn,
    *,
    pickle_path: Path,
    out_dir: Path,
    query_mode: str = "first",
    videos: Sequence[str] | None = None,
    resize: int = 256,
    batch_size: int = 16,
    method: str = "soft_argmax",
    temperature: float = 0.05,
    window: int | None = None,
    visibility_threshold: float = 0.5,
    progress: bool = True,
) -> dict[str, Any]:
    """Track every query of TAP-Vid with ``features`` and score it as the official code does.

    Args:
        features: Feature function, float32 ``(n, 3, resize, resize)`` frames in ``[0, 1]`` ->
            ``(n, h, w, C)`` token field covering the frame.
        pickle_path: ``tapvid_davis.pkl`` (or RoboTAP / RGB-stacking), or a folder of
            TAP-Vid-Kinetics pickles.
        out_dir: Where ``tapvid_metrics.json`` and ``pictures/tapvid_tracks.png`` go.
        query_mode: ``first`` or ``strided``.
        videos: Only these video names (``None``: all).
        resize: Side of the square frames the features see (256 in the official protocol);
            predictions are scaled to 256 x 256 pixels for the metrics.
        batch_size: Frames per call of ``features``.
        method: ``soft_argmax`` or ``nearest`` (:func:`levyjepa.eval.tracking.track_points`).
        temperature: Softmax temperature of ``soft_argmax`` (> 0).
        window: Chebyshev radius in tokens of the ``soft_argmax`` window (``None``: 1).
        visibility_threshold: Best cosine similarity below which a point is predicted occluded.
        progress: Show a progress bar over videos.

    Returns:
        ``tapvid/<metric>`` for ``average_jaccard``, ``average_pts_within_thresh``,
        ``occlusion_accuracy``, ``jaccard_<d>``, ``pts_within_<d>`` (d = 1, 2, 4, 8, 16): means
        over videos; ``tapvid/videos`` and ``tapvid/queries`` (counts); and
        ``tapvid/per_video``: ``name -> {metric: value, "queries": Q}``.

    Raises:
        ConfigError: A bad argument, a missing or malformed pickle, an unknown video.
    """
    _check_args(query_mode, videos, resize, batch_size, method, temperature, window,
                visibility_threshold)
    per_video: dict[str, dict[str, float]] = {}
    picture = None
    bar = progress_bar(iter_videos(Path(pickle_path), names=videos), desc="tapvid",
                       enable=progress)
    try:
        for item in bar:
            frames = resize_video(item.video, resize)
            queries = sample_queries(item.points * resize, item.occluded, mode=query_mode)
            if not len(queries.frame):
                continue
            field = video_field(features, frames, batch_size=batch_size)
            pred, pred_occ = track_queries(field, queries.frame, queries.xy,
                                           frame_size=(resize, resize), method=method,
                                           temperature=temperature, window=window,
                                           visibility_threshold=visibility_threshold)
            scale = METRIC_SIZE / resize
            scores = tapvid_metrics(queries.frame, queries.occluded, queries.target * scale,
                                    pred_occ, pred * scale, query_mode=query_mode)
            per_video[item.name] = {**scores, "queries": len(queries.frame)}
            if picture is None:
                picture = _tracks_picture(item.name, frames, queries, pred, pred_occ, query_mode)
    finally:
        bar.close()
    if not per_video:
        raise ConfigError(f"no TAP-Vid video with a query in {pickle_path} (videos={videos})")
    means = mean_over_videos([{k: v for k, v in s.items() if k != "queries"}
                              for s in per_video.values()])
    out = {f"tapvid/{k}": v for k, v in means.items()}
    out["tapvid/videos"] = len(per_video)
    out["tapvid/queries"] = sum(int(s["queries"]) for s in per_video.values())
    out["tapvid/per_video"] = per_video
    out_dir = Path(out_dir)
    settings = {"pickle_path": str(pickle_path), "query_mode": query_mode, "resize": resize,
                "method": method, "temperature": temperature, "window": window,
                "visibility_threshold": visibility_threshold}
    atomic_write_json(out_dir / RESULTS_FILE, _json_safe({**out, "settings": settings}))
    atomic_write_bytes(out_dir / PICTURE, picture)
    return out


def _tracks_picture(name: str, frames: np.ndarray, queries, pred: np.ndarray,
                    pred_occ: np.ndarray, query_mode: str) -> bytes:
    """PNG of a few frames with true (circles) and predicted-visible (crosses) points."""
    from levyjepa.eval.dense_pictures import tracks_figure

    k = slice(0, PICTURE_TRACKS)
    video = {"examples": {"frames": frames, "truth_tracks": queries.target[k],
                          "truth_visible": ~queries.occluded[k],
                          "tracks": {"features": np.where(pred_occ[k, :, None], np.nan,
                                                          pred[k])}}}
    fig = tracks_figure(video, title=f"TAP-Vid {name}, {query_mode} queries")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_args(query_mode: str, videos: Sequence[str] | None, resize: int, batch_size: int,
                method: str, temperature: float, window: int | None,
                visibility_threshold: float) -> None:
    if query_mode not in QUERY_MODES:
        raise ConfigError(f"query_mode must be one of {', '.join(QUERY_MODES)}, got "
                          f"{query_mode!r}")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if videos is not None and (isinstance(videos, str) or not all(isinstance(v, str)
                                                                  for v in videos)):
        raise ConfigError(f"videos must be a list of video names, got {videos!r}")
    for key, value, low in (("resize", resize, 1), ("batch_size", batch_size, 1),
                            ("window", 0 if window is None else window, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{key} must be an integer >= {low}, got {value!r}")
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ConfigError(f"temperature must be > 0, got {temperature!r}")
    if not (isinstance(visibility_threshold, (int, float)) and
            math.isfinite(visibility_threshold)):
        raise ConfigError(f"visibility_threshold must be a finite number, got "
                          f"{visibility_threshold!r}")
