"""levyjepa.eval.dense_metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from levyjepa.eval.dense_metrics import (
    boundary_f,
    boundary_map,
    chance_miou,
    confusion_matrix,
    delta_avg,
    occlusion_accuracy,
    region_j,
    segmentation_scores,
    video_j_and_f,
)


def square(top: int, left: int, side: int = 8, size: int = 32) -> torch.Tensor:
    m = torch.zeros(size, size, dtype=torch.bool)
    m[top : top + side, left : left + side] = True
    return m


# ---------------------------------------------------------------- semantic segmentation


def test_confusion_matrix_counts_ignores_and_accumulates():
    pred = torch.tensor([[0, 1, 1], [2, 2, 0]])
    target = torch.tensor([[0, 1, 255], [2, 1, 255]])
    cm = confusion_matrix(pred, target, classes=3)
    assert cm.dtype == torch.int64
    # kept pairs (gt, pred): (0,0) (1,1) (2,2) (1,2); the two 255 pixels are skipped
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    halves = confusion_matrix(pred[:1], target[:1], classes=3) + confusion_matrix(
        pred[1:], target[1:], classes=3
    )
    assert torch.equal(halves, cm)
    with pytest.raises(ValueError):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), classes=3)


def test_segmentation_scores_hand_confusion():
    # rows = ground truth, cols = prediction; class 2 is in neither map
    cm = torch.tensor([[3, 1, 0], [1, 2, 0], [0, 0, 0]])
    # class 0: TP 3, FN 1, FP 1 -> 3/5;  class 1: TP 2, FN 1, FP 1 -> 2/4
    s = segmentation_scores(cm)
    assert s["iou"][:2] == pytest.approx([3 / 5, 2 / 4])
    assert math.isnan(s["iou"][2]) and s["present"] == [True, True, False]
    assert s["miou"] == pytest.approx((3 / 5 + 2 / 4) / 2)  # absent class 2 excluded
    assert s["pixel_acc"] == pytest.approx(5 / 7)
    # class 2 predicted once but never in the ground truth: IoU 0, and it counts
    cm2 = torch.tensor([[3, 1, 0], [1, 2, 1], [0, 0, 0]])
    # class 1: TP 2, FN 2, FP 1 -> 2/5;  class 2: TP 0, FP 1 -> 0
    assert segmentation_scores(cm2)["miou"] == pytest.approx((3 / 5 + 2 / 5 + 0) / 3)


def test_oracle_prediction_scores_one():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (4, 16, 16), generator=g)
    s = segmentation_scores(confusion_matrix(target.clone(), target, classes=5))
    assert s["miou"] == 1.0 and s["pixel_acc"] == 1.0


def test_chance_miou_closed_form():
    assert chance_miou([0.5, 0.5]) == pytest.approx(1 / 3)  # 0.5 / 1.5
    assert chance_miou([1, 1, 1, 1]) == pytest.approx(1 / 7)  # uniform C: 1 / (2C - 1)
    assert chance_miou([0.2, 0.8, 0.0]) == pytest.approx((0.2 / 1.8 + 0.8 / 1.2) / 2)


def test_random_prediction_matches_chance_miou():
    # ground truth with exact fractions p, prediction drawn i.i.d. with the same p
    p = torch.tensor([0.5, 0.3, 0.2])
    n = 200_000
    target = torch.repeat_interleave(torch.arange(3), (p * n).long())
    g = torch.Generator().manual_seed(0)
    pred = torch.multinomial(p, n, replacement=True, generator=g)
    miou = segmentation_scores(confusion_matrix(pred, target, classes=3))["miou"]
    # chance = (0.5/1.5 + 0.3/1.7 + 0.2/1.8) / 3 = 0.2070. Tolerance 0.005: the rarest class
    # has n p^2 = 8000 expected TPs, a ~1.1% relative spread, so each IoU moves by ~0.0015 (one
    # sigma) and the mean of three by ~0.001; the ratio's O(1/n) bias is ~1e-5.
    assert chance_miou(p) == pytest.approx(0.2070, abs=1e-4)
    assert miou == pytest.approx(chance_miou(p), abs=0.005)


# ---------------------------------------------------------------- DAVIS J and F


def test_boundary_map_of_square_is_its_shifted_ring():
    b = boundary_map(square(8, 8))
    # the 2x2 block at (i, j) is mixed for i, j in 7..15 except the all-inside 8..14:
    # the ring of [7, 15]^2, 9*9 - 7*7 = 32 pixels
    ring = torch.zeros(32, 32, dtype=torch.bool)
    ring[7:16, 7:16] = True
    ring[8:15, 8:15] = False
    assert torch.equal(b, ring) and int(b.sum()) == 32
    assert not boundary_map(torch.ones(32, 32, dtype=torch.bool)).any()  # border is no edge
    assert not boundary_map(torch.zeros(5, 7)).any()


def test_identical_masks_give_one():
    m = square(8, 8)
    assert region_j(m, m) == 1.0 and boundary_f(m, m) == 1.0


def test_empty_masks():
    empty, m = torch.zeros(32, 32, dtype=torch.bool), square(8, 8)
    assert region_j(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    assert region_j(empty, m) == 0.0 and boundary_f(empty, m) == 0.0
    assert region_j(m, empty) == 0.0 and boundary_f(m, empty) == 0.0


def test_shifted_square_j_and_f_by_hand():
    gt, pred = square(8, 8), square(8, 10)  # 8x8 squares, pred shifted 2 px right
    # J: overlap 8 rows x 6 cols = 48, union 64 + 64 - 48 = 80
    assert region_j(pred, gt) == pytest.approx(48 / 80)
    # tolerance: ceil(0.008 * sqrt(32^2 + 32^2)) = ceil(0.362) = 1 px, disk = the 4-neighbour cross
    # gt boundary: ring of rows/cols 7..15; pred boundary: ring of rows 7..15 x cols 9..17 (32 each)
    # pred pixels within 1 px of the gt ring:
    #   top row 7, cols 9..16 (col 16 touches (7,15); col 17 does not)  8
    #   bottom row 15, cols 9..16                                       8
    #   left col 9, rows 8..14: only rows 8 and 14 touch rows 7 / 15     2
    #   right col 17, rows 8..14: nothing of the gt ring within 1 px     0
    # precision = 18/32; recall = 18/32 by the mirror symmetry (gt col 15 rows 8, 14; rows 7 and
    # 15 cols 8..15); F = 2PR/(P+R) = 18/32 = 9/16
    assert boundary_f(pred, gt) == pytest.approx(18 / 32)
    assert boundary_f(gt, pred) == pytest.approx(18 / 32)
    # a tolerance of 2 px (>= the shift) matches every boundary pixel
    assert boundary_f(pred, gt, bound_th=2) == 1.0


def test_video_j_and_f_excludes_first_and_last_frames():
    t = 5
    gt = torch.zeros(t, 32, 32, dtype=torch.long)
    gt[:, 4:12, 4:12] = 1
    gt[:, 18:28, 16:30] = 2
    gt[2, 0:3, 0:3] = 3  # an id absent from the first frame is not scored
    pred = gt.clone()
    pred[2][pred[2] == 3] = 0
    pred[0] = 0  # first and last frames entirely wrong
    pred[-1] = 0
    res = video_j_and_f(pred, gt)
    assert res["objects"] == [1, 2]
    assert res["j_mean"] == 1.0 and res["f_mean"] == 1.0 and res["j_and_f"] == 1.0
    # scored over all 5 frames: J = F = 0 on frames 0 and 4, 1 on the 3 others -> 3/5
    full = video_j_and_f(pred, gt, exclude_first_last=False)
    assert full["j_mean"] == pytest.approx(3 / 5) and full["f_mean"] == pytest.approx(3 / 5)
    assert full["j_and_f"] == pytest.approx(3 / 5)


def test_video_j_and_f_void_pixels_are_not_scored():
    gt = torch.zeros(3, 32, 32, dtype=torch.long)
    gt[:, 8:16, 8:16] = 1
    gt[:, 8:16, 16:20] = 255  # void strip right of the object
    pred = (gt > 0).long()  # predicts the void strip as object 1 too
    assert video_j_and_f(pred, gt)["j_and_f"] == 1.0


# ---------------------------------------------------------------- TAP-Vid


def tracks(n: int = 4, t: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, t, 2, generator=g) * 200 + 20


def test_delta_avg_exact_and_offset():
    gt = tracks()
    vis = torch.ones(4, 6, dtype=torch.bool)
    assert delta_avg(gt.clone(), gt, vis, frame_size=256) == 1.0
    off = gt + torch.tensor([3.0, 0.0])
    # 3 px: not < 1, not < 2, < 4, < 8, < 16 -> (0 + 0 + 1 + 1 + 1) / 5
    assert delta_avg(off, gt, vis, frame_size=256) == pytest.approx(0.6)
    # a 1 px error is not within the strict 1 px threshold
    assert delta_avg(gt + torch.tensor([0.0, 1.0]), gt, vis, frame_size=256) == pytest.approx(0.8)


def test_delta_avg_thresholds_scale_with_frame_size():
    gt = tracks() * 2
    vis = torch.ones(4, 6, dtype=torch.bool)
    # at 512 px the thresholds are 2, 4, 8, 16, 32
    assert delta_avg(gt + torch.tensor([6.0, 0.0]), gt, vis, frame_size=512) == pytest.approx(0.6)
    assert delta_avg(gt + torch.tensor([3.0, 0.0]), gt, vis, frame_size=512) == pytest.approx(0.8)
    # non-square (H, W) = (256, 512): x is halved, y is kept
    hw = (256, 512)
    assert delta_avg(gt + torch.tensor([6.0, 0.0]), gt, vis, frame_size=hw) == pytest.approx(0.6)
    assert delta_avg(gt + torch.tensor([0.0, 6.0]), gt, vis, frame_size=hw) == pytest.approx(0.4)


def test_delta_avg_skips_occluded_points_and_query_frames():
    gt = tracks()
    pred = gt.clone()
    vis = torch.ones(4, 6, dtype=torch.bool)
    pred[0, 3] += 100.0  # an occluded point: not scored
    vis[0, 3] = False
    assert delta_avg(pred, gt, vis, frame_size=256) == 1.0
    q = torch.tensor([0, 2, 5, 1])
    pred[torch.arange(4), q] += 100.0  # wrong only on each track's query frame
    assert delta_avg(pred, gt, vis, frame_size=256, query_frame=q) == 1.0
    # without the exclusion: 4 wrong out of 23 visible points
    assert delta_avg(pred, gt, vis, frame_size=256) == pytest.approx(19 / 23)


def test_occlusion_accuracy():
    vis = torch.tensor([[True, True, False, False], [True, False, True, True]])
    pred = torch.tensor([[True, False, False, True], [True, False, True, True]])
    assert occlusion_accuracy(pred, vis) == pytest.approx(6 / 8)
    # query frames 1 and 0 dropped: the (0, 1) miss and a (1, 0) hit leave 5 of 6
    assert occlusion_accuracy(pred, vis, query_frame=torch.tensor([1, 0])) == pytest.approx(5 / 6)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        confusion_matrix(torch.zeros(2, 2), torch.zeros(2, 3), classes=2)
    with pytest.raises(ValueError):
        segmentation_scores(torch.zeros(3, 3, dtype=torch.long))  # nothing counted
    with pytest.raises(ValueError):
        region_j(torch.zeros(4, 4), torch.zeros(4, 5))
    clip = torch.ones(2, 8, 8, dtype=torch.long)
    with pytest.raises(ValueError):
        video_j_and_f(clip, clip)  # two frames: nothing left once first and last are dropped
    with pytest.raises(ValueError):
        video_j_and_f(clip * 0, clip * 0, exclude_first_last=False)  # no object
    gt, hidden = tracks(), torch.zeros(4, 6, dtype=torch.bool)
    with pytest.raises(ValueError):
        delta_avg(gt, gt, hidden, frame_size=256)  # no visible point
    with pytest.raises(ValueError):
        occlusion_accuracy(hidden[:, :5], hidden)
