"""Point tracking by feature matching on frozen patch features, scored TAP-Vid style.

Benchmark and metrics: Doersch et al., "TAP-Vid: A Benchmark for Tracking Any Point in a
Video", NeurIPS 2022 Datasets and Benchmarks (:func:`levyjepa.eval.dense_metrics.delta_avg`,
:func:`levyjepa.eval.dense_metrics.occlusion_accuracy`). The tracker is the plain feature-matching
baseline, with no training and no temporal model: each point is matched independently in
every frame against its frame-0 descriptor.

Coordinates are ``(x, y)`` pixels of ``H x W`` frames, ``H = h * patch``, ``W = w * patch``;
pixel ``(row i, col j)`` is centred at ``(j + 0.5, i + 0.5)`` and patch ``(r, c)`` at
``((c + 0.5) * patch, (r + 0.5) * patch)``, the ``grid_sample(align_corners=False)``
convention. The descriptor of a query is the bilinear sample of frame 0's L2-normalised feature
field at the query position (border padding), re-normalised, so a query between patches gets a
blend of its neighbours. In every frame its cosine similarity to every patch gives:

- ``nearest``: the centre of the most similar patch;
- ``soft_argmax``: the mean of the patch centres weighted by ``softmax(sim / temperature)``,
  the softmax restricted to the patches within Chebyshev radius ``window`` of the most similar
  one, so a distant look-alike does not drag the estimate towards it.

Visibility: a point is predicted occluded in a frame when its best similarity there is below
``visibility_threshold`` (frame 0 is always visible).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from levyjepa.eval.dense_metrics import delta_avg, occlusion_accuracy

METHODS = ("nearest", "soft_argmax")


def track_points(
    feats: torch.Tensor,
    queries: torch.Tensor,
    *,
    patch: int,
    method: str = "soft_argmax",
    temperature: float = 0.05,
    window: int | None = None,
    return_visibility: bool = False,
    visibility_threshold: float = 0.5,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Track frame-0 query points through a clip by matching their features.

    Args:
        feats: Float ``(T, h, w, D)`` frozen patch features of the clip.
        queries: ``(N, 2)`` ``(x, y)`` pixel positions in frame 0, inside ``[0, W] x [0, H]``.
        patch: Patch side in pixels (>= 1).
        method: ``"nearest"`` or ``"soft_argmax"``.
        temperature: Softmax temperature of ``soft_argmax`` on cosine similarities (> 0).
        window: Chebyshev radius in patches (>= 0) of the ``soft_argmax`` window around the most
            similar patch; ``None`` means 1 (a 3 x 3 window). ``max(h, w)`` disables it.
        return_visibility: Also return the predicted visibility.
        visibility_threshold: Cosine similarity below which a point is predicted occluded.

    Returns:
        ``(N, T, 2)`` tracks in the features' dtype and device (frame 0 holds the queries), and
        with ``return_visibility`` a boolean ``(N, T)`` predicted visibility as well.

    Raises:
        ValueError: Naming the offending argument (shapes, patch, method, temperature, window).
    """
    _check_int("patch", patch, 1)
    if feats.ndim != 4 or not feats.is_floating_point() or 0 in feats.shape:
        raise ValueError(f"feats must be a non-empty float (T, h, w, D), got {feats.dtype} "
                         f"{tuple(feats.shape)}")
    if queries.ndim != 2 or queries.shape[1] != 2:
        raise ValueError(f"queries must be (N, 2) (x, y) pixels, got {tuple(queries.shape)}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    window = 1 if window is None else window
    _check_int("window", window, 0)
    t_len, h, w, _ = feats.shape
    device, dtype = feats.device, feats.dtype
    q = queries.to(device=device, dtype=dtype)
    size = torch.tensor([w * patch, h * patch], device=device, dtype=dtype)  # (W, H)
    if not (torch.isfinite(q).all() and (q >= 0).all() and (q <= size).all()):
        raise ValueError(f"queries must lie in [0, W] x [0, H] = [0, {w * patch}] x "
                         f"[0, {h * patch}] pixels")

    field = F.normalize(feats, dim=-1)  # (T, h, w, D)
    grid = (2 * q / size - 1)[None, None]  # (1, 1, N, 2) in grid_sample's [-1, 1] coordinates
    desc = F.grid_sample(field[0].permute(2, 0, 1)[None], grid, mode="bilinear",
                         padding_mode="border", align_corners=False)[0, :, 0].T  # (N, D)
    desc = F.normalize(desc, dim=-1)
    sim = torch.einsum("nd,tpd->ntp", desc, field.reshape(t_len, h * w, -1))  # (N, T, hw)

    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                indexing="ij")
    cells = torch.stack([cols.flatten(), rows.flatten()], 1)  # (hw, 2) as (col, row)
    centres = (cells.to(dtype) + 0.5) * patch  # (hw, 2) as (x, y) pixels
    best_sim, best = sim.max(-1)  # (N, T)
    if method == "nearest":
        tracks = centres[best]
    else:
        near = (cells[:, None] - cells[None]).abs().amax(-1) <= window  # (hw, hw)
        logits = (sim / temperature).masked_fill(~near[best], float("-inf"))
        tracks = torch.softmax(logits, dim=-1) @ centres  # (N, T, 2)
    tracks[:, 0] = q
    if not return_visibility:
        return tracks
    visible = best_sim >= visibility_threshold
    visible[:, 0] = True
    return tracks, visible


def evaluate_tracking(
    clips_feats: Sequence[torch.Tensor],
    clips_tracks: Sequence[torch.Tensor],
    clips_visible: Sequence[torch.Tensor],
    *,
    patch: int,
    frame_size: int | tuple[int, int],
    **kwargs: object,
) -> dict:
    """TAP-Vid ``<delta^x_avg>`` and occlusion accuracy of :func:`track_points` over clips.

    The queries are the ground-truth positions in frame 0, so only tracks visible in frame 0
    are used (the others are dropped and not counted); frame 0 is then excluded from scoring
    (``query_frame = 0``). Each clip is scored on its own and the summary is the mean over clips.

    Args:
        clips_feats: One float ``(T_i, h, w, D)`` feature field per clip.
        clips_tracks: One ``(N_i, T_i, 2)`` ground-truth ``(x, y)`` pixel track set per clip.
        clips_visible: One boolean ``(N_i, T_i)`` ground-truth visibility per clip.
        patch: Patch side in pixels (>= 1).
        frame_size: ``S`` or ``(H, W)`` of the frames; must equal ``(h * patch, w * patch)``.
        **kwargs: ``method``, ``temperature``, ``window``, ``visibility_threshold`` of
            :func:`track_points`.

    Returns:
        ``{"delta_avg", "occlusion_acc"}`` means over clips, ``"clips"`` and ``"points"``
        (tracks scored, summed over clips).
    """
    n_clips = len(clips_feats)
    if not n_clips or len(clips_tracks) != n_clips or len(clips_visible) != n_clips:
        raise ValueError(f"clips_feats ({n_clips}), clips_tracks ({len(clips_tracks)}) and "
                         f"clips_visible ({len(clips_visible)}) must hold the same number >= 1")
    size = (frame_size, frame_size) if isinstance(frame_size, int) else tuple(frame_size)
    deltas, occlusion, points = [], [], 0
    for i, (feats, gt, vis) in enumerate(zip(clips_feats, clips_tracks, clips_visible)):
        if feats.ndim != 4 or size != (feats.shape[1] * patch, feats.shape[2] * patch):
            raise ValueError(f"frame_size {size} must be (h*patch, w*patch) of clips_feats[{i}] "
                             f"{tuple(feats.shape)}")
        if gt.ndim != 3 or gt.shape[1:] != (feats.shape[0], 2) or vis.shape != gt.shape[:2]:
            raise ValueError(f"clips_tracks[{i}] {tuple(gt.shape)} and clips_visible[{i}] "
                             f"{tuple(vis.shape)} must be (N, T, 2) and (N, T), T = "
                             f"{feats.shape[0]}")
        keep = vis[:, 0].bool()
        gt, vis = gt[keep].cpu(), vis[keep].bool().cpu()
        if not len(gt):
            raise ValueError(f"clips_visible[{i}]: no track is visible in frame 0")
        pred, pred_vis = track_points(feats, gt[:, 0], patch=patch, return_visibility=True,
                                      **kwargs)
        query_frame = torch.zeros(len(gt), dtype=torch.long)
        deltas.append(delta_avg(pred.cpu(), gt, vis, frame_size=size, query_frame=query_frame))
        occlusion.append(occlusion_accuracy(pred_vis.cpu(), vis, query_frame=query_frame))
        points += len(gt)
    return {"delta_avg": sum(deltas) / n_clips, "occlusion_acc": sum(occlusion) / n_clips,
            "clips": n_clips, "points": points}


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
