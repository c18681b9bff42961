"""The TAP-Vid metrics, as the official evaluation computes them.

C. Doersch et al., "TAP-Vid: A Benchmark for Tracking Any Point in a Video", NeurIPS 2022
Datasets and Benchmarks; reference implementation ``compute_tapvid_metrics`` in
``google-deepmind/tapnet``, ``tapnet/tapvid/evaluation_datasets.py``. Written anew here in
NumPy (float64); the definitions:

- *scored frames*: ``first`` mode, the frames after each query's frame; ``strided`` mode, every
  frame but the query's frame;
- ``occlusion_accuracy``: the fraction of scored frames whose predicted occlusion equals the
  ground truth's;
- ``pts_within_d`` (``d`` in 1, 2, 4, 8, 16 pixels of the 256 x 256 frame): among the scored
  frames where the ground truth is visible, the fraction with ``||pred - gt|| < d`` (strict),
  whatever the predicted occlusion; ``average_pts_within_thresh`` (``<delta^x_avg>``) their mean;
- ``jaccard_d = TP / (TP + FP + FN)`` over scored frames: TP, ground truth visible, predicted
  visible and within ``d``; FP, predicted visible and (ground truth occluded or not within
  ``d``); FN, ground truth visible and (predicted occluded or not within ``d``). A visible point
  predicted visible but too far counts as both FP and FN. ``TP + FN`` is the number of visible
  scored frames, so ``jaccard_d = TP / (visible + FP)``. ``average_jaccard`` (AJ) their mean.

Every count is pooled over all queries and scored frames of one video (not averaged per track);
the benchmark's number is the plain mean of the per-video values over videos
(:func:`mean_over_videos`). A video with no visible scored frame gives NaN, as the official
division does.

:func:`levyjepa.eval.dense_metrics.occlusion_accuracy` scores every frame but the query frame
(the ``strided`` convention); :func:`tapvid_metrics` follows the query mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

THRESHOLDS = (1, 2, 4, 8, 16)
"""Pixel thresholds at 256 x 256."""
QUERY_MODES = ("first", "strided")
METRIC_NAMES = ("average_jaccard", "average_pts_within_thresh", "occlusion_accuracy",
                *(f"jaccard_{d}" for d in THRESHOLDS), *(f"pts_within_{d}" for d in THRESHOLDS))
"""The keys :func:`tapvid_metrics` returns."""


def scored_frames(query_frame: np.ndarray, num_frames: int, *, query_mode: str) -> np.ndarray:
    """bool ``(Q, T)``: the frames scored for each query.

    Args:
        query_frame: int ``(Q,)`` query frame of each query, in ``[0, T)``.
        num_frames: ``T``.
        query_mode: ``first`` (frames after the query frame) or ``strided`` (all but it).
    """
    if query_mode not in QUERY_MODES:
        raise ValueError(f"query_mode must be one of {QUERY_MODES}, got {query_mode!r}")
    q = np.asarray(query_frame).astype(np.int64).reshape(-1, 1)
    if ((q < 0) | (q >= num_frames)).any():
        raise ValueError(f"query frames must lie in [0, {num_frames}), got {q.ravel().tolist()}")
    frames = np.arange(num_frames)[None]
    return frames > q if query_mode == "first" else frames != q


def tapvid_metrics(query_frame: np.ndarray, gt_occluded: np.ndarray, gt_tracks: np.ndarray,
                   pred_occluded: np.ndarray, pred_tracks: np.ndarray, *, query_mode: str,
                   thresholds: Sequence[float] = THRESHOLDS) -> dict[str, float]:
    """The TAP-Vid metrics of one video (see the module docstring).

    Args:
        query_frame: int ``(Q,)`` frame of each query.
        gt_occluded: bool ``(Q, T)`` ground-truth occlusion.
        gt_tracks: ``(Q, T, 2)`` ground-truth ``(x, y)`` pixels of the 256 x 256 frame.
        pred_occluded: bool ``(Q, T)`` predicted occlusion.
        pred_tracks: ``(Q, T, 2)`` predicted ``(x, y)`` pixels.
        query_mode: ``first`` or ``strided``.
        thresholds: Pixel thresholds (the keys name them as integers when integral).

    Returns:
        ``occlusion_accuracy``, ``pts_within_<d>``, ``jaccard_<d>`` per threshold,
        ``average_pts_within_thresh`` and ``average_jaccard``, as floats.
    """
    gt_occ = np.asarray(gt_occluded, dtype=bool)
    pred_occ = np.asarray(pred_occluded, dtype=bool)
    gt, pred = np.asarray(gt_tracks, np.float64), np.asarray(pred_tracks, np.float64)
    if gt_occ.ndim != 2 or pred_occ.shape != gt_occ.shape:
        raise ValueError(f"occlusions must be two (Q, T), got {gt_occ.shape}, {pred_occ.shape}")
    if gt.shape != (*gt_occ.shape, 2) or pred.shape != gt.shape:
        raise ValueError(f"tracks must be (Q, T, 2) = {(*gt_occ.shape, 2)}, got {gt.shape}, "
                         f"{pred.shape}")
    if not len(thresholds):
        raise ValueError("thresholds must not be empty")
    scored = scored_frames(query_frame, gt_occ.shape[1], query_mode=query_mode)
    if len(np.asarray(query_frame).reshape(-1)) != gt_occ.shape[0]:
        raise ValueError(f"query_frame must hold one frame per query ({gt_occ.shape[0]})")
    visible, pred_visible = ~gt_occ & scored, ~pred_occ & scored
    n_visible = visible.sum()
    out = {"occlusion_accuracy": _ratio(((pred_occ == gt_occ) & scored).sum(), scored.sum())}
    sq_dist = ((pred - gt) ** 2).sum(-1)
    within, jaccard = [], []
    for d in thresholds:
        close = sq_dist < d * d
        correct = (close & visible).sum()
        true_pos = (close & visible & pred_visible).sum()
        false_pos = (pred_visible & (gt_occ | ~close)).sum()
        name = int(d) if float(d).is_integer() else d
        out[f"pts_within_{name}"] = _ratio(correct, n_visible)
        out[f"jaccard_{name}"] = _ratio(true_pos, n_visible + false_pos)
        within.append(out[f"pts_within_{name}"])
        jaccard.append(out[f"jaccard_{name}"])
    out["average_pts_within_thresh"] = float(np.mean(within))
    out["average_jaccard"] = float(np.mean(jaccard))
    return out


def mean_over_videos(per_video: Sequence[dict[str, float]]) -> dict[str, float]:
    """The benchmark's numbers: each metric's plain mean over videos (NaN propagates).

    Args:
        per_video: One :func:`tapvid_metrics` result per video (same keys).
    """
    if not per_video:
        raise ValueError("no video to average")
    return {k: float(np.mean([v[k] for v in per_video])) for k in per_video[0]}


def _ratio(num: int, den: int) -> float:
    return float(num) / float(den) if den else float("nan")
