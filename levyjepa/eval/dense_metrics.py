"""Dense-evaluation metrics (issue 13), pure functions on CPU tensors.

Semantic segmentation (mIoU as in PASCAL VOC, Everingham et al., IJCV 2010); DAVIS J and F
(Perazzi et al., "A Benchmark Dataset and Evaluation Methodology for Video Object Segmentation",
CVPR 2016; Pont-Tuset et al., "The 2017 DAVIS Challenge on Video Object Segmentation", arXiv
1704.00675); TAP-Vid point tracking (Doersch et al., "TAP-Vid: A Benchmark for Tracking Any Point
in a Video", NeurIPS 2022).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, *, classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """Count (ground truth, prediction) label pairs.

    Args:
        pred: Integer labels, any shape ``(...)``, values in ``[0, classes)``.
        target: Integer labels, same shape; pixels equal to ``ignore_index`` are skipped (their
            prediction is not checked).
        classes: Number of classes ``C``.
        ignore_index: Ground-truth label that marks unlabeled pixels.

    Returns:
        ``(C, C)`` int64 tensor, row = ground truth, column = prediction. Sum the matrices of the
        batches of a test set, then call :func:`segmentation_scores` once.
    """
    if pred.shape != target.shape or classes < 1:
        raise ValueError(f"shapes {pred.shape} vs {target.shape}, classes {classes} (need >= 1)")
    keep = target != ignore_index
    p, t = pred[keep].long(), target[keep].long()
    if p.numel() and (min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= classes):
        raise ValueError(f"labels must lie in [0, {classes}) outside ignore_index")
    counts = torch.bincount(t * classes + p, minlength=classes * classes)
    return counts.reshape(classes, classes).cpu()


def segmentation_scores(confusion: torch.Tensor) -> dict:
    """mIoU, pixel accuracy and per-class IoU from an accumulated confusion matrix.

    ``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` with the counts summed over the whole test set (not
    averaged per image), as in the PASCAL VOC protocol. ``miou`` is the mean over classes,
    background included, **excluding classes absent from both prediction and ground truth**
    (their IoU is 0/0; they get ``nan`` in ``iou``). A class that is predicted but never in the
    ground truth has IoU 0 and counts.

    Args:
        confusion: ``(C, C)`` counts, row = ground truth, column = prediction.

    Returns:
        ``{"miou": float, "pixel_acc": float, "iou": list[float] (length C, nan if absent),
        "present": list[bool] (length C)}``.
    """
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be square (C, C), got {tuple(confusion.shape)}")
    cm = confusion.double()
    if (total := cm.sum()) <= 0:
        raise ValueError("confusion matrix is empty: no labeled pixels were counted")
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp  # TP + FP + FN
    present = union > 0
    iou = torch.where(present, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
    out = {"miou": float(iou[present].mean()), "pixel_acc": float(tp.sum() / total)}
    return {**out, "iou": iou.tolist(), "present": present.tolist()}


def chance_miou(class_frequencies: Sequence[float] | torch.Tensor) -> float:
    """Expected mIoU of a predictor that guesses each pixel at random with the class frequencies.

    Derivation. Let the ground truth of ``n`` pixels have class fractions ``p_c`` and let the
    predictor label every pixel independently, class ``c`` with probability ``p_c``. Then
    ``E[TP_c] = n p_c * p_c``, ``E[FP_c] = n (1 - p_c) p_c``, ``E[FN_c] = n p_c (1 - p_c)``, so
    ``E[TP_c + FP_c + FN_c] = n (2 p_c - p_c^2)``. For large ``n`` the counts concentrate on
    their means (law of large numbers; the ratio's bias is ``O(1/n)``), hence

    ``IoU_c -> p_c^2 / (2 p_c - p_c^2) = p_c / (2 - p_c)``

    and the chance mIoU is the mean of ``p_c / (2 - p_c)`` over classes with ``p_c > 0`` (the
    others are absent from both maps and excluded, as in :func:`segmentation_scores`). Uniform
    ``C`` classes give ``1 / (2C - 1)``.

    Args:
        class_frequencies: ``(C,)`` non-negative frequencies or counts; normalised to sum 1.

    Returns:
        The chance mIoU in ``[0, 1]``.
    """
    p = torch.as_tensor(class_frequencies, dtype=torch.float64).flatten()
    if p.numel() == 0 or (p < 0).any() or p.sum() <= 0:
        raise ValueError("class_frequencies must be non-negative with a positive sum")
    p = (p / p.sum())[p > 0]
    return float((p / (2 - p)).mean())


def region_j(pred_mask: torch.Tensor, gt_mask: torch.Tensor) -> float:
    """DAVIS region similarity J: the IoU of two boolean masks (Perazzi et al., CVPR 2016).

    Args:
        pred_mask: ``(H, W)`` boolean (or 0/1) mask.
        gt_mask: ``(H, W)`` boolean (or 0/1) mask.

    Returns:
        ``|pred & gt| / |pred | gt|``; 1.0 when both masks are empty.
    """
    a, b = _as_mask(pred_mask, gt_mask)
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def boundary_map(mask: torch.Tensor) -> torch.Tensor:
    """One-pixel-wide boundary of a mask: the rule of DAVIS's ``seg2bmap``.

    Rule implemented: pixel ``(i, j)`` is a boundary pixel when its value differs from its right
    ``(i, j+1)``, bottom ``(i+1, j)`` or bottom-right ``(i+1, j+1)`` neighbour, i.e. when the 2x2
    block anchored at it is not constant. Neighbours outside the image take the value of the
    nearest pixel inside it (edge replication), so the image border itself is never a boundary.
    This is the DAVIS XOR rule, which also marks the background pixel just left of / above an
    object: requiring the pixel itself to be foreground would drop the objects' left and top edges.
    An ``h x w`` rectangle off the border gives a ring of ``2 (h + w)`` pixels, one up and left.

    Args:
        mask: ``(H, W)`` boolean (or 0/1) mask.

    Returns:
        ``(H, W)`` boolean boundary map.
    """
    (m,) = _as_mask(mask)
    padded = F.pad(m[None, None].float(), (0, 1, 0, 1), mode="replicate")[0, 0].bool()
    right, bottom, diag = padded[:-1, 1:], padded[1:, :-1], padded[1:, 1:]
    return (m != right) | (m != bottom) | (m != diag)


def boundary_f(pred_mask: torch.Tensor, gt_mask: torch.Tensor, *, bound_th: float = 0.008) -> float:
    """DAVIS contour accuracy F: F-measure of boundary precision and recall (Perazzi et al., 2016).

    The boundaries are :func:`boundary_map`. A boundary pixel of one map matches when a boundary
    pixel of the other lies within ``r`` pixels (Euclidean), ``r = ceil(bound_th * diagonal)``
    with ``diagonal = sqrt(H^2 + W^2)`` (``bound_th >= 1`` is taken as ``r`` in pixels, as in the
    DAVIS code); this is a dilation by the disk ``{dx^2 + dy^2 <= r^2}``. Precision = matched
    predicted boundary pixels / predicted boundary pixels, recall = matched ground-truth boundary
    pixels / ground-truth boundary pixels, ``F = 2 P R / (P + R)`` (0 when ``P + R = 0``).

    Args:
        pred_mask: ``(H, W)`` boolean (or 0/1) mask.
        gt_mask: ``(H, W)`` boolean (or 0/1) mask.
        bound_th: Tolerance as a fraction of the image diagonal (or pixels if ``>= 1``).

    Returns:
        F in ``[0, 1]``: 1.0 when neither map has a boundary pixel, 0.0 when only one has.
    """
    a, b = _as_mask(pred_mask, gt_mask)
    r = int(bound_th) if bound_th >= 1 else math.ceil(bound_th * math.hypot(*a.shape))
    pb, gb = boundary_map(a), boundary_map(b)
    n_p, n_g = int(pb.sum()), int(gb.sum())
    if n_p == 0 or n_g == 0:
        return float(n_p == n_g)  # both empty: 1.0, one empty: 0.0
    precision = int((pb & _dilate(gb, r)).sum()) / n_p
    recall = int((gb & _dilate(pb, r)).sum()) / n_g
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def video_j_and_f(
    pred_masks: torch.Tensor,
    gt_masks: torch.Tensor,
    *,
    exclude_first_last: bool = True,
    bound_th: float = 0.008,
    void_label: int | None = 255,
) -> dict:
    """DAVIS 2017 semi-supervised J, F and J&F of one video (Pont-Tuset et al., 2017).

    The objects are the instance ids ``> 0`` of the ground truth's first frame (the frame whose
    masks a semi-supervised method is given); ids appearing only later are ignored. With
    ``exclude_first_last`` the first frame (given) and the last frame are not scored, as in the
    DAVIS 2017 evaluation code. Pixels whose ground truth is ``void_label`` are removed from both
    masks before scoring. ``j_mean`` (``f_mean``) is the mean over objects of each object's mean
    J (F) over the scored frames; ``j_and_f = (j_mean + f_mean) / 2``.

    Args:
        pred_masks: ``(T, H, W)`` integer instance map (0 = background).
        gt_masks: ``(T, H, W)`` integer instance map, same shape.
        exclude_first_last: Skip frames ``0`` and ``T - 1``.
        bound_th: Boundary tolerance, see :func:`boundary_f`.
        void_label: Ground-truth label of void pixels, or ``None``.

    Returns:
        ``j_mean``, ``f_mean``, ``j_and_f`` floats; ``objects`` (ids), ``j_per_object``,
        ``f_per_object`` lists.
    """
    if pred_masks.shape != gt_masks.shape or gt_masks.ndim != 3:
        raise ValueError(f"need two (T, H, W) maps, got {pred_masks.shape}, {gt_masks.shape}")
    ids = [i for i in torch.unique(gt_masks[0]).tolist() if 0 < i != void_label]
    if not ids:
        raise ValueError("the ground truth's first frame has no object (no id > 0)")
    t = gt_masks.shape[0]
    frames = range(1, t - 1) if exclude_first_last else range(t)
    if len(frames) == 0:
        raise ValueError(f"no frame left to score in a clip of {t} frames")
    valid = gt_masks != void_label if void_label is not None else torch.ones_like(gt_masks) > 0
    j_obj, f_obj = [], []
    for k in ids:
        pairs = [((pred_masks[f] == k) & valid[f], (gt_masks[f] == k) & valid[f]) for f in frames]
        j_obj.append(sum(region_j(p, g) for p, g in pairs) / len(pairs))
        f_obj.append(sum(boundary_f(p, g, bound_th=bound_th) for p, g in pairs) / len(pairs))
    j_mean, f_mean = sum(j_obj) / len(ids), sum(f_obj) / len(ids)
    res = {"j_mean": j_mean, "f_mean": f_mean, "j_and_f": (j_mean + f_mean) / 2}
    return {**res, "objects": ids, "j_per_object": j_obj, "f_per_object": f_obj}


def delta_avg(
    pred_tracks: torch.Tensor,
    gt_tracks: torch.Tensor,
    visible: torch.Tensor,
    *,
    frame_size: int | tuple[int, int],
    thresholds: Sequence[float] = (1, 2, 4, 8, 16),
    reference: int = 256,
    query_frame: torch.Tensor | None = None,
) -> float:
    """TAP-Vid position accuracy ``<delta^x_avg>`` of one video (Doersch et al., NeurIPS 2022).

    For each threshold ``d``, the fraction of evaluated points with ``||pred - gt|| < d`` (strict,
    as in the TAP-Vid code), averaged over thresholds; evaluated points are the ground-truth
    visible ones minus each track's query frame (if given). Thresholds are pixels of a
    ``reference``-sized square frame: ``x`` is rescaled by ``reference / W``, ``y`` by
    ``reference / H``, i.e. thresholds scale by ``frame_size / reference`` for square frames.

    Args:
        pred_tracks: ``(N, T, 2)`` predicted ``(x, y)`` pixel positions.
        gt_tracks: ``(N, T, 2)`` ground-truth ``(x, y)`` pixel positions.
        visible: ``(N, T)`` boolean ground-truth visibility.
        frame_size: ``S`` (square) or ``(H, W)`` of the frames the coordinates refer to.
        thresholds: Pixel thresholds at the reference resolution.
        reference: Side of the reference frame (256 in TAP-Vid).
        query_frame: Optional ``(N,)`` integer index of each track's query frame.

    Returns:
        ``<delta^x_avg>`` in ``[0, 1]``.
    """
    if pred_tracks.shape != gt_tracks.shape or gt_tracks.ndim != 3 or gt_tracks.shape[-1] != 2:
        raise ValueError(f"need two (N, T, 2) tracks, got {pred_tracks.shape}, {gt_tracks.shape}")
    evaluated = _evaluated(visible.bool(), query_frame, gt_tracks.shape[:2])
    if not evaluated.any():
        raise ValueError("no visible point to evaluate")
    h, w = (frame_size, frame_size) if isinstance(frame_size, int) else frame_size
    scale = torch.tensor([reference / w, reference / h], dtype=torch.float64)
    dist = ((pred_tracks.double() - gt_tracks.double()) * scale).norm(dim=-1)[evaluated]
    return sum(float((dist < d).double().mean()) for d in thresholds) / len(thresholds)


def occlusion_accuracy(
    pred_visible: torch.Tensor, visible: torch.Tensor, *, query_frame: torch.Tensor | None = None
) -> float:
    """TAP-Vid occlusion accuracy: fraction of points whose visibility is predicted correctly.

    Args:
        pred_visible: ``(N, T)`` boolean predicted visibility.
        visible: ``(N, T)`` boolean ground-truth visibility.
        query_frame: Optional ``(N,)`` query frame per track; those frames are not evaluated.

    Returns:
        Accuracy in ``[0, 1]`` over all (non-query) points, visible or not.
    """
    evaluated = _evaluated(torch.ones_like(visible.bool()), query_frame, pred_visible.shape)
    correct = pred_visible.bool() == visible.bool()
    return float(correct[evaluated].double().mean())


def _evaluated(visible: torch.Tensor, query_frame: torch.Tensor | None, shape) -> torch.Tensor:
    """``(N, T)`` points to score: ``visible`` minus each track's query frame."""
    if visible.shape != shape or len(shape) != 2:
        raise ValueError(f"visibility must be (N, T) = {tuple(shape)}, got {tuple(visible.shape)}")
    if query_frame is None:
        return visible
    return visible & (torch.arange(shape[1]) != torch.as_tensor(query_frame).reshape(-1, 1))


def _as_mask(*masks: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Boolean ``(H, W)`` views of masks of one shape."""
    out = tuple(torch.as_tensor(m).bool() for m in masks)
    if any(m.ndim != 2 or m.shape != out[0].shape for m in out):
        raise ValueError(f"masks must be (H, W) of one shape, got {[m.shape for m in out]}")
    return out


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilate an ``(H, W)`` boolean mask by the disk ``{dx^2 + dy^2 <= radius^2}``."""
    if radius <= 0:
        return mask
    offs = torch.arange(-radius, radius + 1)
    disk = (offs[:, None] ** 2 + offs[None, :] ** 2 <= radius**2).float()
    return F.conv2d(mask[None, None].float(), disk[None, None], padding=radius)[0, 0] > 0
