"""Video label propagation on frozen patch features, scored with DAVIS 2017 J and F.

The protocol is the one DINO (Caron et al., "Emerging Properties in Self-Supervised Vision
Transformers", ICCV 2021) uses on DAVIS 2017, itself after CRW (Jabri et al., "Space-Time
Correspondence as a Contrastive Random Walk", NeurIPS 2020): the ground-truth masks of frame 0
are carried to the later frames by nearest-neighbour voting in feature space, with no training.

For frame ``t >= 1`` the context is frame 0 with its ground-truth soft labels plus the previous
``context`` frames with their *predicted* soft labels (kept at patch resolution, not re-hardened,
as DINO's queue does). Every query patch of frame ``t`` compares its L2-normalised feature with
the context patches inside a box of Chebyshev radius ``radius`` patches around its own position
(the same box in every context frame: DINO's neighbourhood mask), keeps the ``topk`` largest
affinities over the whole context and takes the softmax of ``affinity / temperature`` over them
as voting weights. DINO writes this as ``exp(aff / 0.1)`` zeroed outside the top-k and divided
by its sum, which is the same softmax. Affinities tied with the k-th largest are all kept, as
DINO's ``aff < min(topk)`` threshold does; the result is thus independent of the order of the
patches. The soft labels are upsampled by ``patch`` with bilinear interpolation
(``align_corners=False``) and the argmax gives the predicted instance map.

DINO rescales each upsampled channel to ``[0, 1]`` (its ``norm_mask``) before the argmax; that
is left out here: the argmax is taken on the soft labels themselves.

Default neighbourhood: DINO uses a radius of 12 patches on 480-pixel-high frames with 8-pixel
patches, i.e. 0.2 of a 60-patch short side. With ``radius=None`` the radius is scaled the same
way to the grid at hand: ``max(1, round(0.2 * min(h, w)))`` patches (2 on an 8 x 8 grid, 3 on a
16 x 16 one, 12 on DINO's 60-patch side).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from levyjepa.eval.dense_metrics import video_j_and_f


def default_radius(h: int, w: int) -> int:
    """DINO's neighbourhood radius (12 of a 60-patch short side) scaled to an ``h x w`` grid."""
    return max(1, round(0.2 * min(h, w)))


def propagate_soft_labels(
    feats: torch.Tensor,
    first_mask: torch.Tensor,
    *,
    patch: int,
    context: int = 7,
    radius: int | None = None,
    topk: int = 5,
    temperature: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Propagate frame 0's labels through a clip at patch resolution.

    Args:
        feats: Float ``(T, h, w, D)`` frozen patch features of the clip.
        first_mask: Integer ``(H, W)`` instance map of frame 0, ``H = h * patch``,
            ``W = w * patch`` (0 = background; the ids need not be contiguous).
        patch: Patch side in pixels (>= 1).
        context: Number of previous predicted frames used besides frame 0 (>= 0).
        radius: Chebyshev radius of the neighbourhood in patches (>= 0), ``None`` for
            :func:`default_radius`.
        topk: Number of context patches that vote for each query patch (>= 1).
        temperature: Softmax temperature of the affinities (> 0).

    Returns:
        ``(soft, ids)``: float ``(T, K, h, w)`` soft labels (frame 0's is the average-pooled
        one-hot of ``first_mask``; each patch's labels sum to 1) and the int64 ``(K,)`` sorted
        ids of ``first_mask`` that the ``K`` channels stand for.

    Raises:
        ValueError: Naming the offending argument (shapes, patch, counts, temperature).
    """
    t_len, h, w, _ = _check_inputs(feats, first_mask, patch)
    _check_int("context", context, 0)
    _check_int("topk", topk, 1)
    if radius is not None:
        _check_int("radius", radius, 0)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    radius = default_radius(h, w) if radius is None else radius
    device, dtype = feats.device, feats.dtype
    mask = first_mask.to(device).long()
    ids = torch.unique(mask)  # sorted, so searchsorted maps each id to its channel
    onehot = F.one_hot(torch.searchsorted(ids, mask), len(ids)).permute(2, 0, 1).to(dtype)
    first = F.avg_pool2d(onehot[None], patch)[0].flatten(1).T  # (hw, K)

    keys = F.normalize(feats.reshape(t_len, h * w, -1), dim=-1)  # (T, hw, D)
    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                indexing="ij")
    pos = torch.stack([rows.flatten(), cols.flatten()], 1)  # (hw, 2)
    near = (pos[:, None] - pos[None]).abs().amax(-1) <= radius  # (hw query, hw key) box mask

    labels = [first]  # (hw, K) per frame: ground truth for frame 0, predictions after
    for t in range(1, t_len):
        used = [0, *range(max(1, t - context), t)]
        ctx_keys = keys[used].reshape(-1, keys.shape[-1])  # (n * hw, D)
        ctx_labels = torch.cat([labels[i] for i in used])  # (n * hw, K)
        aff = keys[t] @ ctx_keys.T  # (hw, n * hw) cosine similarities
        aff = aff.masked_fill(~near.repeat(1, len(used)), float("-inf"))
        kth = aff.topk(min(topk, aff.shape[1]), dim=1).values[:, -1:]
        # Below the k-th value the weight is 0, ties with it are kept. Keys outside the box are
        # -inf already (weight 0 even when fewer than k are allowed and kth is -inf); the query's
        # own position is always allowed, so every row keeps a finite entry.
        logits = (aff / temperature).masked_fill(aff < kth, float("-inf"))
        labels.append(torch.softmax(logits, dim=1) @ ctx_labels)
    soft = torch.stack(labels).reshape(t_len, h, w, -1).permute(0, 3, 1, 2)
    return soft, ids


def propagate_masks(
    feats: torch.Tensor,
    first_mask: torch.Tensor,
    *,
    patch: int,
    context: int = 7,
    radius: int | None = None,
    topk: int = 5,
    temperature: float = 0.1,
) -> torch.Tensor:
    """Instance maps of every frame of a clip, propagated from frame 0's (DINO's protocol).

    Args:
        feats: Float ``(T, h, w, D)`` frozen patch features of the clip.
        first_mask: Integer ``(H, W)`` instance map of frame 0 (``H = h * patch``,
            ``W = w * patch``; 0 = background, ids need not be contiguous).
        patch: Patch side in pixels (>= 1).
        context: Previous predicted frames used besides frame 0 (>= 0; DINO: 7).
        radius: Neighbourhood radius in patches, ``None`` for :func:`default_radius`.
        topk: Voting context patches per query patch (>= 1; DINO: 5).
        temperature: Softmax temperature of the affinities (> 0; DINO: 0.1).

    Returns:
        Int64 ``(T, H, W)`` predicted instance maps with the ids of ``first_mask``, on the
        features' device; frame 0 is ``first_mask`` itself.
    """
    soft, ids = propagate_soft_labels(feats, first_mask, patch=patch, context=context,
                                      radius=radius, topk=topk, temperature=temperature)
    up = F.interpolate(soft, scale_factor=patch, mode="bilinear", align_corners=False)
    pred = ids[up.argmax(1)]  # (T, H, W)
    pred[0] = first_mask.to(pred.device)
    return pred


def evaluate_propagation(
    clips_feats: Sequence[torch.Tensor],
    clips_masks: Sequence[torch.Tensor],
    *,
    patch: int,
    **kwargs: object,
) -> dict:
    """DAVIS 2017 J, F and J&F of label propagation over a set of clips.

    Each clip is propagated from its ground-truth frame 0 (:func:`propagate_masks`) and scored
    by :func:`levyjepa.eval.dense_metrics.video_j_and_f` (first and last frames not scored, objects
    = the ids of frame 0). The summary is the **mean over clips of the per-clip means** (each
    clip's own mean over its objects), not a mean over all objects of the set.

    Args:
        clips_feats: One float ``(T_i, h, w, D)`` feature field per clip.
        clips_masks: One integer ``(T_i, H, W)`` ground-truth instance map per clip.
        patch: Patch side in pixels (>= 1).
        **kwargs: ``context``, ``radius``, ``topk``, ``temperature`` of :func:`propagate_masks`.

    Returns:
        ``{"j_mean", "f_mean", "j_and_f"}`` floats averaged over clips, ``"clips"`` (count),
        ``"j_and_f_per_clip"`` (list) and ``"background_only_clips"``: the number of clips whose
        propagated frames after the first are background everywhere (see
        :func:`propagation_warning`).
    """
    if len(clips_feats) != len(clips_masks) or len(clips_feats) == 0:
        raise ValueError(f"clips_feats ({len(clips_feats)}) and clips_masks "
                         f"({len(clips_masks)}) must hold the same number >= 1 of clips")
    scores, background_only = [], 0
    for i, (feats, masks) in enumerate(zip(clips_feats, clips_masks)):
        if masks.ndim != 3 or masks.shape[0] != feats.shape[0]:
            raise ValueError(f"clips_masks[{i}] must be (T, H, W) with T = {feats.shape[0]}, "
                             f"got {tuple(masks.shape)}")
        pred = propagate_masks(feats, masks[0], patch=patch, **kwargs)
        background_only += bool((pred[1:] == 0).all())  # read only: no score depends on it
        scores.append(video_j_and_f(pred.cpu(), masks.cpu().long()))
    out = {key: sum(s[key] for s in scores) / len(scores) for key in ("j_mean", "f_mean")}
    out["j_and_f"] = (out["j_mean"] + out["f_mean"]) / 2
    return {**out, "clips": len(scores), "j_and_f_per_clip": [s["j_and_f"] for s in scores],
            "background_only_clips": background_only}


def object_reach(first_mask: torch.Tensor, patch: int, *,
                 void_label: int | None = 255) -> list[tuple[float, bool]]:
    """Each object of frame 0: its area in tokens and whether propagation can ever predict it.

    Every propagated soft label (frame ``t >= 1``) is a convex combination of context labels,
    and by induction of frame 0's average-pooled labels; the bilinear upsampling is one more
    convex combination. An inequality ``share(object) <= share(background)`` that holds in
    every token of frame 0 therefore holds at every pixel of every later frame, and the argmax
    (the first channel on ties: background, id 0) never picks that object, whatever the features:
    its J is 0 on every scored frame where it is visible. This happens when the token grid is
    coarse next to the objects: an object that fills at most half of every token it touches,
    the rest being background, is never predicted.

    Args:
        first_mask: Integer ``(H, W)`` instance map of frame 0 (0 = background).
        patch: Patch side in pixels; ``H`` and ``W`` are multiples of it.
        void_label: Id that is not an object (as in
            :func:`levyjepa.eval.dense_metrics.video_j_and_f`), or ``None``.

    Returns:
        ``(area, reachable)`` per object id ``> 0`` of ``first_mask`` in id order: its pixel
        count over ``patch ** 2``, and ``False`` when no token of frame 0 holds more of it than
        of the background. Without background in frame 0 every object counts as reachable.
    """
    mask = first_mask.long().cpu()
    ids = [k for k in torch.unique(mask).tolist() if 0 < k != void_label]
    if not bool((mask == 0).any()):
        return [(float((mask == k).sum()) / patch**2, True) for k in ids]
    # pixel counts per token (exact integers): the shares of frame 0's soft labels times patch^2
    background = F.avg_pool2d((mask == 0)[None].double(), patch, divisor_override=1)
    out = []
    for k in ids:
        counts = F.avg_pool2d((mask == k)[None].double(), patch, divisor_override=1)
        out.append((float(counts.sum()) / patch**2, bool((counts > background).any())))
    return out


def propagation_warning(
    first_masks: Sequence[torch.Tensor],
    *,
    patch: int,
    grid: tuple[int, int],
    background_only: dict[str, int],
    clips: int,
) -> str | None:
    """One line on a propagation result that cannot mean much, else ``None``.

    Two cases, the first taking precedence (it is the cause of the second):

    * the token grid is too coarse: at least half of frame 0's objects, over all clips, cannot
      be propagated by any features (:func:`object_reach`); their J&F is then the same for
      every source: the share of scored frames where they are out of sight (hidden or out of
      the frame: J = F = 1 there, 0 elsewhere);
    * some sources predicted background everywhere after frame 0 in every clip.

    Args:
        first_masks: Integer ``(H, W)`` frame-0 instance maps, one per clip.
        patch: Patch side in pixels.
        grid: The token grid ``(h, w)``.
        background_only: ``source -> `` its ``background_only_clips`` of
            :func:`evaluate_propagation`.
        clips: Number of clips.

    Returns:
        The warning (without the ``levyjepa: warning:`` prefix) or ``None``.
    """
    reach = [r for mask in first_masks for r in object_reach(mask, patch)]
    lost = sum(not ok for _, ok in reach)
    if reach and 2 * lost >= len(reach):
        areas = [area for area, _ in reach]
        return (f"propagation: a {grid[0]} x {grid[1]} token grid (patch {patch} px) is too "
                f"coarse for the objects: {lost} of {len(reach)} objects in frame 0 (median "
                f"{statistics.median(areas):.2f} tokens, smallest {min(areas):.2f}) outweigh the "
                "background in no token, so no features can propagate them and their J&F, the "
                "same for every source, only counts the frames where they are out of sight; use "
                "a larger image size or a smaller patch")
    empty = [name for name, count in background_only.items() if count == clips]
    if empty:
        return (f"propagation: {', '.join(empty)} predicted background everywhere after frame "
                f"0 in all {clips} clips: their J&F only counts the frames where the objects "
                "are out of sight")
    return None


def _check_inputs(feats: torch.Tensor, first_mask: torch.Tensor, patch: int) -> tuple[int, ...]:
    """``(T, h, w, D)`` of valid inputs, else a ValueError naming the bad one."""
    _check_int("patch", patch, 1)
    if feats.ndim != 4 or not feats.is_floating_point() or 0 in feats.shape:
        raise ValueError(f"feats must be a non-empty float (T, h, w, D), got {feats.dtype} "
                         f"{tuple(feats.shape)}")
    if first_mask.ndim != 2 or first_mask.is_floating_point() or first_mask.dtype == torch.bool:
        raise ValueError(f"first_mask must be an integer (H, W) map, got {first_mask.dtype} "
                         f"{tuple(first_mask.shape)}")
    size = (feats.shape[1] * patch, feats.shape[2] * patch)
    if tuple(first_mask.shape) != size:
        raise ValueError(f"first_mask must be (h*patch, w*patch) = {size}, got "
                         f"{tuple(first_mask.shape)}")
    return tuple(feats.shape)


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
