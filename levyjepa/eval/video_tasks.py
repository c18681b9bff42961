"""``task=propagation`` and ``task=tracking``: dense video protocols on generated clips.

Both read generated clips with exact ground truth (:mod:`levyjepa.data.generated.scene_clips`:
several shapes moving along Lévy-like paths, occluding each other, leaving and re-entering the
frame, with per-frame instance maps and point tracks). They are the run's own clips when it was
trained on ``scene_video`` (same parameters, the source's disjoint test range), otherwise default
clips at the encoder's input size. A clip is ``frames`` long (a video encoder's ``num_frames``); a
video encoder's field has one time step per tubelet, so its ground truth is taken at the first
frame of every tubelet (:func:`levyjepa.eval.dense_features.clip_field`).

* propagation: :func:`levyjepa.eval.propagation.propagate_masks` from frame 0's instance map,
  DAVIS 2017 J, F and J&F (:func:`levyjepa.eval.dense_metrics.video_j_and_f`);
* tracking: :func:`levyjepa.eval.tracking.track_points` from frame 0's query points, TAP-Vid's
  ``delta_avg`` and occlusion accuracy.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

from levyjepa.data.generated.scene_video import TEST_START, SceneClipVideos
from levyjepa.eval.dense_features import clip_field, is_video_encoder, patch_size_of

# Parameters of the scene_video source that shape the clips (the rest are about sampling).
_CLIP_KEYS = ("seed", "classes", "jump_prob", "objects", "points")


def evaluation_clips(data_cfg: dict, *, size: int, frames: int, count: int) -> list:
    """The ``count`` test clips (with ground truth) the video protocols score.

    Args:
        data_cfg: The run's ``data`` section (its own clips when ``name`` is ``scene_video``).
        size: The encoder's input side.
        frames: Frames per clip.
        count: Number of clips.
    """
    own = data_cfg.get("name") == "scene_video"
    params = {k: data_cfg[k] for k in _CLIP_KEYS if own and k in data_cfg}
    if "objects" in params:
        params["objects"] = tuple(params["objects"])
    videos = SceneClipVideos(count=count, start=TEST_START, size=size, frames=frames, **params)
    return [videos.ground_truth(i) for i in range(count)]


def clip_frames_for(encoder: nn.Module, default: int) -> int:
    """Clip length the protocols use: a video encoder's ``num_frames``, else ``default``."""
    if is_video_encoder(encoder):
        return int(encoder.patch_embed.input_size[1])
    return default


def run_video_tasks(
    encoders: dict[str, nn.Module],
    clips: list,
    *,
    tasks: tuple[str, ...],
    size: int,
    features: str = "tokens",
    device: torch.device | str = "cpu",
    pixels: bool = True,
) -> dict[str, Any]:
    """Score propagation and/or tracking for every feature source (raw pixels added).

    Args:
        encoders: ``source -> encoder``.
        clips: Clips of :func:`evaluation_clips`.
        tasks: A subset of ``("propagation", "tracking")``.
        size: Frame side.
        features: ``tokens`` or ``tokens_proj``.
        device: Where the encoders run.
        pixels: Add the raw-pixels source.

    Returns:
        ``{"propagation": {source: {"j_mean", "f_mean", "j_and_f"}}, "tracking": {source:
        {"delta_avg", "occlusion_acc"}}, "patch", "clips", "frames", "examples"}`` and, when
        the propagation result cannot mean much, ``"warnings"`` (one line each, also printed
        to stderr; :func:`levyjepa.eval.propagation.propagation_warning`); the examples (clip
        0: its frames, truth and every source's predicted masks and tracks) feed the pictures.
    """
    from levyjepa.eval.dense_features import pixel_field
    from levyjepa.eval.propagation import (
        default_radius,
        evaluate_propagation,
        propagate_masks,
        propagation_warning,
    )
    from levyjepa.eval.tracking import evaluate_tracking, track_points

    # every source sees the same frames: the encoders share the recipe, the pixels follow them
    fields: dict[str, list[torch.Tensor]] = {}
    index = patch = None
    for name, encoder in encoders.items():
        encoder = encoder.to(device)
        pairs = [clip_field(encoder, torch.as_tensor(c.frames), which=features, device=device)
                 for c in clips]
        fields[name] = [f for f, _ in pairs]
        index = pairs[0][1] if index is None else index
        patch = patch or patch_size_of(fields[name][0], size)
    if pixels:
        fields["pixels"] = [pixel_field(torch.as_tensor(c.frames).permute(0, 3, 1, 2)[index],
                                        patch_size=patch) for c in clips]
    masks = [torch.as_tensor(c.instances)[index] for c in clips]
    tracks = [torch.as_tensor(c.tracks)[:, index] for c in clips]
    visible = [torch.as_tensor(c.visible)[:, index] for c in clips]
    h, w = next(iter(fields.values()))[0].shape[1:3]
    out: dict[str, Any] = {
        "patch": patch, "clips": len(clips), "frames": len(index),
        "frame_index": index.tolist(),
        "propagation_settings": {"context": 7, "radius": default_radius(h, h), "topk": 5,
                                 "temperature": 0.1},
        "tracking_settings": {"method": "soft_argmax", "temperature": 0.05, "window": 1,
                              "visibility_threshold": 0.5},
        # occlusion_acc of a predictor that calls every point visible: the bar to clear
        "always_visible_occlusion_acc": float(torch.cat([v[:, 1:].flatten() for v in visible])
                                              .double().mean()),
    }
    examples: dict[str, Any] = {"frames": clips[0].frames[index.numpy()], "masks": {},
                                "tracks": {}, "truth_masks": masks[0],
                                "truth_tracks": tracks[0], "truth_visible": visible[0]}
    for task in tasks:
        out[task] = {}
    background_only: dict[str, int] = {}
    for name, feats in fields.items():
        if "propagation" in tasks:
            res = evaluate_propagation(feats, masks, patch=patch)
            out["propagation"][name] = {k: float(res[k]) for k in ("j_mean", "f_mean",
                                                                   "j_and_f")}
            background_only[name] = res["background_only_clips"]
            examples["masks"][name] = propagate_masks(feats[0], masks[0][0], patch=patch)
        if "tracking" in tasks:
            res = evaluate_tracking(feats, tracks, visible, patch=patch, frame_size=size)
            out["tracking"][name] = {k: float(v) for k, v in res.items()
                                     if k in ("delta_avg", "occlusion_acc")}
            examples["tracks"][name] = track_points(feats[0], tracks[0][:, 0], patch=patch)
    if "propagation" in tasks:
        # printed here, where the grid and the masks are known; kept in eval.json ("video")
        warning = propagation_warning([m[0] for m in masks], patch=patch, grid=(h, w),
                                      background_only=background_only, clips=len(clips))
        if warning is not None:
            print(f"levyjepa: warning: {warning}", file=sys.stderr, flush=True)
            out["warnings"] = [warning]
    out["examples"] = examples
    return out
