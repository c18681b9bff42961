"""DAVIS 2017 scoring as the official tool does it: hand-computed J, F, Recall, Decay, CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from levyjepa.core.errors import ConfigError
from levyjepa.eval.benchmarks.davis_scoring import (
    db_statistics,
    decay_bins,
    score_results,
    score_sequence,
)

PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [7] * (768 - 12)


def png(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    img.putpalette(PALETTE)
    img.save(path)


def square(r0: int, r1: int, c0: int, c1: int, k: int,
           base: np.ndarray | None = None) -> np.ndarray:
    """An 8 x 8 map with id ``k`` on rows ``r0..r1-1``, columns ``c0..c1-1``."""
    m = np.zeros((8, 8), np.uint8) if base is None else base.copy()
    m[r0:r1, c0:c1] = k
    return m


def golden_tree(tmp_path: Path) -> tuple[Path, Path]:
    """Two 8 x 8 sequences, their annotations and results (see the tests for the arithmetic).

    ``a`` (6 frames, scored 1..4): id 1 a 2x2 square (rows 2-3, cols 2-3) in every frame; id 3
    a 2x2 square (rows 5-6, cols 5-6) in every frame; id 2 hidden in frame 0 (frame 0 holds ids
    1 and 3, so N = 3), drawn in frames 3 and 4 (rows 5-6, cols 1-2); frame 1 has a row of void
    (255) on row 0. Results: id 1 exact in 1 and 3, missing in 2, a 2x4 rect (cols 2-5) in 4;
    id 3 exact except frame 1 where it also covers the void row 0; id 2 never; frame 5 empty.
    ``b`` (5 frames, scored 1..3): id 1 a 4x4 square; results exact, exact, empty.
    """
    root, res = tmp_path / "davis", tmp_path / "res"
    ann = root / "Annotations" / "480p"
    one, three = square(2, 4, 2, 4, 1), square(5, 7, 5, 7, 3)
    both = square(5, 7, 5, 7, 3, one)
    for t in range(6):
        gt = both.copy()
        if t in (3, 4):
            gt = square(5, 7, 1, 3, 2, gt)
        if t == 1:
            gt[0] = 255
        png(ann / "a" / f"{t:05d}.png", gt)
    pred = {1: both.copy(), 2: three.copy(), 3: both.copy(), 4: square(2, 4, 2, 6, 1, three),
            5: np.zeros((8, 8), np.uint8)}
    pred[1][0] = 3
    for t, m in pred.items():
        png(res / "a" / f"{t:05d}.png", m)
    b = square(1, 5, 1, 5, 1)
    for t in range(5):
        png(ann / "b" / f"{t:05d}.png", b)
    for t, m in {1: b, 2: b, 3: np.zeros((8, 8), np.uint8), 4: b}.items():
        png(res / "b" / f"{t:05d}.png", m)
    return root, res


def test_decay_bins_are_the_official_overlapping_quarters():
    # n = 4: ids = round(linspace(1, 4, 5)) - 1 = round([1, 1.75, 2.5, 3.25, 4]) - 1
    #        = [1, 2, 3, 3, 4] - 1 = [0, 1, 2, 2, 3] (2.5 rounds up); bin i = ids[i] .. ids[i+1]
    assert decay_bins(4) == [slice(0, 2), slice(1, 3), slice(2, 3), slice(2, 4)]
    # n = 3: linspace(1, 3, 5) = [1, 1.5, 2, 2.5, 3] -> [1, 2, 2, 3, 3] - 1 = [0, 1, 1, 2, 2]
    assert decay_bins(3) == [slice(0, 2), slice(1, 2), slice(1, 3), slice(2, 3)]
    # n = 1: all bins are the single value, decay 0
    assert db_statistics([0.7]) == pytest.approx((0.7, 1.0, 0.0))
    # [1, 0, 1, 0.5]: mean 2.5/4; recall 2/4 (0.5 is not > 0.5); decay mean(1, 0) - mean(1, .5)
    # = 0.5 - 0.75 = -0.25 (quarters [v0], [v3] would give 1 - 0.5 = +0.5 instead)
    assert db_statistics([1, 0, 1, 0.5]) == pytest.approx((0.625, 0.5, -0.25))


def test_hand_computed_sequence_scores(tmp_path):
    root, res = golden_tree(tmp_path)
    a = score_sequence(root, res, "a")
    assert sorted(a) == [1, 2, 3]  # N = max id of frame 0 = 3: hidden id 2 counts
    # id 1, J: frame 1 exact 1; frame 2 empty vs 4 px 0; frame 3 1; frame 4 |2x2 & 2x4| / |2x4|
    # = 4 / 8 = 0.5
    assert a[1][0] == pytest.approx([1, 0, 1, 0.5])
    # id 1, F in frame 4 (8 x 8: r = ceil(0.008 * sqrt(128)) = 1, a plus-shaped disk): the 2x4
    # rect's seg2bmap ring = anchors rows 1-3 x cols 1-5 minus the 3 inside = 12 px; the 2x2's
    # = rows 1-3 x cols 1-3 minus 1 = 8 px. Predicted ring pixels (1,5), (2,5), (3,5) are 2 px
    # from the ground-truth ring: P = 9/12; every ground-truth ring pixel is within 1: R = 1;
    # F = 2 * .75 * 1 / 1.75 = 6/7. Frame 2: one mask empty -> F = 0.
    assert a[1][1] == pytest.approx([1, 0, 1, 6 / 7])
    # id 2 (hidden in frame 0, never predicted): both empty in frames 1, 2 -> 1; visible in 3, 4
    # -> 0
    assert a[2][0] == pytest.approx([1, 1, 0, 0]) and a[2][1] == pytest.approx([1, 1, 0, 0])
    # id 3, frame 1: void row 0 counts as background, so the 8 predicted px there are false
    # positives: J = 4 / (4 + 8) = 1/3 (it would be 1 if void were left out); F: the predicted
    # ring = 8 (square) + 8 (row 0, every anchor of row 0 sees row 1 = 0) = 16, 8 of them match:
    # P = 1/2, R = 1, F = 2 * .5 / 1.5 = 2/3.
    assert a[3][0] == pytest.approx([1 / 3, 1, 1, 1])
    assert a[3][1] == pytest.approx([2 / 3, 1, 1, 1])


def test_global_scores_and_csvs(tmp_path):
    root, res = golden_tree(tmp_path)
    out = score_results(root=root, results=res, sequences=["a", "b"], split="val")
    obj = out["objects"]
    # a_1: J [1, 0, 1, .5] -> (.625, .5, -.25); F [1, 0, 1, 6/7] -> mean 20/7/4 = 5/7, recall
    # 3/4, decay mean(1, 0) - mean(1, 6/7) = 1/2 - 13/14 = -3/7
    assert [obj["a_1"][k] for k in ("J-Mean", "J-Recall", "J-Decay")] == pytest.approx(
        [0.625, 0.5, -0.25])
    assert [obj["a_1"][k] for k in ("F-Mean", "F-Recall", "F-Decay")] == pytest.approx(
        [5 / 7, 0.75, -3 / 7])
    # a_2: [1, 1, 0, 0] -> mean .5, recall .5, decay mean(1, 1) - mean(0, 0) = 1 (J and F)
    assert obj["a_2"]["J-Decay"] == pytest.approx(1.0) and obj["a_2"]["F-Mean"] == 0.5
    # a_3: J [1/3, 1, 1, 1] -> 5/6, 3/4, 2/3 - 1 = -1/3; F [2/3, 1, 1, 1] -> 11/12, 1, -1/6
    assert obj["a_3"]["J-Mean"] == pytest.approx(5 / 6)
    assert obj["a_3"]["F-Decay"] == pytest.approx(-1 / 6)
    # b_1: [1, 1, 0] (frame 4, exact, is not scored) -> 2/3, 2/3; bins of 3 = [0:2], [2:3]:
    # decay mean(1, 1) - 0 = 1
    assert [obj["b_1"][k] for k in ("J-Mean", "J-Recall", "J-Decay")] == pytest.approx(
        [2 / 3, 2 / 3, 1.0])
    g = out["global"]  # means over the 4 objects of both sequences
    # J-Mean (.625 + .5 + 5/6 + 2/3) / 4 = 2.625 / 4; F-Mean (5/7 + 1/2 + 11/12 + 2/3) / 4
    # = (60 + 42 + 77 + 56) / 84 / 4 = 235 / 336
    assert g["J-Mean"] == pytest.approx(0.65625) and g["F-Mean"] == pytest.approx(235 / 336)
    assert g["J&F-Mean"] == pytest.approx((0.65625 + 235 / 336) / 2)
    assert g["J-Recall"] == pytest.approx((0.5 + 0.5 + 0.75 + 2 / 3) / 4)  # 29/48
    assert g["J-Decay"] == pytest.approx((-0.25 + 1 - 1 / 3 + 1) / 4)  # 17/48
    assert g["F-Recall"] == pytest.approx((0.75 + 0.5 + 1 + 2 / 3) / 4)  # 35/48
    assert g["F-Decay"] == pytest.approx((-3 / 7 + 1 - 1 / 6 + 1) / 4)  # 59/168
    glob = (res / "global_results-val.csv").read_text().splitlines()
    assert glob[0] == "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay"
    # 0.677827..., 0.65625 -> "0.656", 29/48 = 0.6041.., 17/48 = 0.3541.., 235/336 = 0.6994..,
    # 35/48 = 0.7291.., 59/168 = 0.3511..
    assert glob[1] == "0.678,0.656,0.604,0.354,0.699,0.729,0.351"
    per = (res / "per-sequence_results-val.csv").read_text().splitlines()
    assert per == ["Sequence,J-Mean,F-Mean", "a_1,0.625,0.714", "a_2,0.500,0.500",
                   "a_3,0.833,0.917", "b_1,0.667,0.667"]


def test_bad_results_are_one_line_errors(tmp_path):
    root, res = golden_tree(tmp_path)
    (res / "a" / "00002.png").unlink()
    with pytest.raises(ConfigError, match="00002.png"):
        score_sequence(root, res, "a")
    png(res / "a" / "00002.png", np.full((8, 8), 4, np.uint8))  # id 4 > N = 3
    with pytest.raises(ConfigError, match="id 4"):
        score_sequence(root, res, "a")
    png(res / "a" / "00002.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(ConfigError, match="00002.png"):
        score_sequence(root, res, "a")
