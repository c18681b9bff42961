"""TAP-Vid metrics on small cases computed by hand (levyjepa.eval.benchmarks.tapvid_metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from levyjepa.eval.benchmarks.tapvid_metrics import (
    METRIC_NAMES,
    mean_over_videos,
    scored_frames,
    tapvid_metrics,
)


def golden_case():
    """Two queries over T = 4 frames.

    Query 0, query frame 0, ground truth at (10, 10), visible in every frame:
      f0 pred (200, 200) occluded  (the query frame: never scored)
      f1 pred (10.5, 10) visible   distance 0.5
      f2 pred (13, 10)   visible   distance 3
      f3 pred (30, 10)   occluded  distance 20
    Query 1, query frame 1, ground truth at (50, 50), occluded in f0 and f3:
      f0 pred (50, 50)   visible   (ground truth occluded)
      f1 pred (0, 0)     occluded  (the query frame: never scored)
      f2 pred (50, 56)   visible   distance 6
      f3 pred (50, 50)   occluded  (ground truth occluded: right)
    """
    query_frame = np.array([0, 1])
    gt = np.array([[[10.0, 10.0]] * 4, [[50.0, 50.0]] * 4])
    gt_occ = np.array([[False] * 4, [True, False, False, True]])
    pred = np.array([[[200, 200], [10.5, 10], [13, 10], [30, 10]],
                     [[50, 50], [0, 0], [50, 56], [50, 50]]], dtype=float)
    pred_occ = np.array([[True, False, False, True], [False, True, False, True]])
    return query_frame, gt_occ, gt, pred_occ, pred


def test_first_mode_by_hand():
    # Scored: q0 f1 f2 f3, q1 f2 f3 (5 frames); visible among them: q0 f1 f2 f3, q1 f2 (4).
    # Occlusion right: q0 f1, q0 f2, q1 f2, q1 f3 (q0 f3 wrong) -> 4/5.
    # Distances of the visible ones: 0.5, 3, 20, 6 ->
    #   within 1: 1/4, 2: 1/4, 4: 2/4, 8: 3/4, 16: 3/4; mean (1+1+2+3+3)/20 = 0.5.
    # Predicted visible and scored: q0 f1 (0.5), q0 f2 (3), q1 f2 (6).
    #   d=1, 2: TP 1 (q0 f1), FP 2 (q0 f2, q1 f2): 1 / (4 + 2) = 1/6
    #   d=4: TP 2, FP 1: 2/5;  d=8, 16: TP 3, FP 0: 3/4
    #   AJ = (1/6 + 1/6 + 2/5 + 3/4 + 3/4) / 5 = (10 + 12 + 45) / 30 / 5 = 67/150.
    m = tapvid_metrics(*golden_case(), query_mode="first")
    assert set(m) == set(METRIC_NAMES)
    expected = {"occlusion_accuracy": 4 / 5, "pts_within_1": 1 / 4, "pts_within_2": 1 / 4,
                "pts_within_4": 2 / 4, "pts_within_8": 3 / 4, "pts_within_16": 3 / 4,
                "average_pts_within_thresh": 0.5, "jaccard_1": 1 / 6, "jaccard_2": 1 / 6,
                "jaccard_4": 2 / 5, "jaccard_8": 3 / 4, "jaccard_16": 3 / 4,
                "average_jaccard": 67 / 150}
    assert m == pytest.approx(expected, abs=1e-12)


def test_strided_mode_by_hand():
    # Scored: every frame but the query frame: q0 f1 f2 f3, q1 f0 f2 f3 (6 frames).
    # q1 f0 is new: ground truth occluded, predicted visible -> an occlusion error and one more
    # false positive at every threshold; the visible frames (4) and distances are unchanged.
    #   OA = 4/6; pts_within as in `first`;
    #   jaccard: d=1, 2: 1/(4+3) = 1/7; d=4: 2/(4+2) = 1/3; d=8, 16: 3/(4+1) = 3/5;
    #   AJ = (2/7 + 1/3 + 6/5) / 5 = (30 + 35 + 126) / 105 / 5 = 191/525.
    m = tapvid_metrics(*golden_case(), query_mode="strided")
    expected = {"occlusion_accuracy": 4 / 6, "pts_within_1": 1 / 4, "pts_within_2": 1 / 4,
                "pts_within_4": 2 / 4, "pts_within_8": 3 / 4, "pts_within_16": 3 / 4,
                "average_pts_within_thresh": 0.5, "jaccard_1": 1 / 7, "jaccard_2": 1 / 7,
                "jaccard_4": 1 / 3, "jaccard_8": 3 / 5, "jaccard_16": 3 / 5,
                "average_jaccard": 191 / 525}
    assert m == pytest.approx(expected, abs=1e-12)


def test_query_frame_is_never_scored():
    # Changing the prediction at each query frame (q0 f0, q1 f1) changes nothing in either mode.
    case = golden_case()
    qf, gt_occ, gt, pred_occ, pred = case
    pred2, occ2 = pred.copy(), pred_occ.copy()
    pred2[0, 0], pred2[1, 1] = gt[0, 0], gt[1, 1]
    occ2[0, 0] = occ2[1, 1] = False
    for mode in ("first", "strided"):
        assert tapvid_metrics(qf, gt_occ, gt, occ2, pred2, query_mode=mode) == \
            tapvid_metrics(*case, query_mode=mode)


def test_thresholds_are_strict_and_predicted_occlusion():
    # One query, frame 0, one scored frame with the prediction exactly 4 px away (offset
    # (4, 0)): not within 4 (strict <), within 8 and 16.
    qf, gt_occ = np.array([0]), np.zeros((1, 2), bool)
    gt = np.array([[[100.0, 100.0], [100.0, 100.0]]])
    pred = np.array([[[100.0, 100.0], [104.0, 100.0]]])
    m = tapvid_metrics(qf, gt_occ, gt, np.zeros((1, 2), bool), pred, query_mode="first")
    assert [m[f"pts_within_{d}"] for d in (1, 2, 4, 8, 16)] == [0, 0, 0, 1, 1]
    assert [m[f"jaccard_{d}"] for d in (1, 2, 4, 8, 16)] == [0, 0, 0, 1, 1]
    # The same point predicted occluded: still within 8 for pts_within (occlusion ignored),
    # but no true positive (jaccard 0 = 0 / (1 visible + 0 FP)); occlusion wrong: OA 0.
    occ = np.array([[False, True]])
    m = tapvid_metrics(qf, gt_occ, gt, occ, pred, query_mode="first")
    assert m["pts_within_8"] == 1 and m["jaccard_8"] == 0 and m["occlusion_accuracy"] == 0
    assert m["average_pts_within_thresh"] == pytest.approx(2 / 5)


def test_occluded_ground_truth_predicted_visible_is_a_false_positive_only():
    # Frames 1, 2 scored (query at 0). f1 visible and exact; f2 occluded in the ground truth but
    # predicted visible (at the hidden true spot): TP 1, visible 1, FP 1 -> jaccard 1/2 at every
    # threshold; pts_within counts visible frames only: 1/1; OA: f1 right, f2 wrong -> 1/2.
    qf = np.array([0])
    gt = np.zeros((1, 3, 2)) + 20.0
    gt_occ = np.array([[False, False, True]])
    m = tapvid_metrics(qf, gt_occ, gt, np.zeros((1, 3), bool), gt.copy(), query_mode="first")
    assert m["average_jaccard"] == 0.5 and m["average_pts_within_thresh"] == 1.0
    assert m["occlusion_accuracy"] == 0.5


def test_scored_frames_matrices():
    q = np.array([0, 2, 3])
    assert scored_frames(q, 4, query_mode="first").astype(int).tolist() == [
        [0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert scored_frames(q, 4, query_mode="strided").astype(int).tolist() == [
        [0, 1, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]]
    with pytest.raises(ValueError, match="query_mode"):
        scored_frames(q, 4, query_mode="last")
    with pytest.raises(ValueError, match="query frames"):
        scored_frames(np.array([4]), 4, query_mode="first")


def test_pooled_per_video_then_mean_over_videos():
    # Video A: one query, 4 scored visible frames, 1 within 1 px -> pts_within_1 = 1/4
    # (pooled over its frames). Video B: one scored frame, within -> 1. Benchmark number: the
    # mean over videos (1/4 + 1) / 2 = 0.625, not the pooled 2/5.
    def video(n_good, n_frames):
        gt = np.zeros((1, n_frames + 1, 2))
        pred = gt.copy()
        pred[0, 1 + n_good:, 0] = 50.0
        occ = np.zeros((1, n_frames + 1), bool)
        return tapvid_metrics(np.array([0]), occ, gt, occ, pred, query_mode="first")

    a, b = video(1, 4), video(1, 1)
    assert a["pts_within_1"] == 0.25 and b["pts_within_1"] == 1.0
    assert mean_over_videos([a, b])["pts_within_1"] == 0.625


def test_no_visible_scored_frame_gives_nan_like_the_official_division():
    # The last frame queried in `first` mode leaves nothing to score: 0/0.
    m = tapvid_metrics(np.array([1]), np.zeros((1, 2), bool), np.zeros((1, 2, 2)),
                       np.zeros((1, 2), bool), np.zeros((1, 2, 2)), query_mode="first")
    assert np.isnan(m["average_jaccard"]) and np.isnan(m["occlusion_accuracy"])


def test_bad_shapes():
    qf, gt_occ, gt, pred_occ, pred = golden_case()
    with pytest.raises(ValueError, match="tracks"):
        tapvid_metrics(qf, gt_occ, gt, pred_occ, pred[:, :3], query_mode="first")
    with pytest.raises(ValueError, match="one frame per query"):
        tapvid_metrics(qf[:1], gt_occ, gt, pred_occ, pred, query_mode="first")
