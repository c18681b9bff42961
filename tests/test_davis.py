"""DAVIS 2017 label propagation on a tiny tree in the exact format: oracle, blind features, I/O."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from levyjepa.core.errors import ConfigError
from levyjepa.eval.benchmarks.davis import evaluate_davis, resized_size
from levyjepa.eval.benchmarks.davis_io import read_annotation, split_sequences

P = 4  # patch side; frames are 24 x 40 (a 480 x 854-like 3:5 shape), a 6 x 10 token grid
H, W = 24, 40
T = 10  # frames per sequence, scored 1..8
SMALL = dict(short_side=H, size_multiple=8)  # resized_size(24, 40) = (24, 40): no resize
PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128] + [9] * (768 - 15)


def masks_one() -> list[np.ndarray]:
    """One 12 x 16 px object (3 x 4 patches) moving right by one patch every other frame."""
    out = []
    for t in range(T):
        m = np.zeros((H, W), np.uint8)
        c = P * (1 + t // 2)
        m[8:20, c:c + 16] = 1
        out.append(m)
    return out


def masks_three() -> list[np.ndarray]:
    """Ids 1-3; id 3 is out of sight in frames 4-6; a void (255) ring outside id 1."""
    out = []
    for t in range(T):
        m = np.zeros((H, W), np.uint8)
        m[12, 0:13] = m[0:13, 12] = 255  # void ring, on background pixels right of / below id 1
        m[0:12, 0:12] = 1
        c = P * (4 + t // 3)
        m[12:24, c:c + 12] = 2
        if t not in (4, 5, 6):
            m[0:8, 28:40] = 3
        out.append(m)
    return out


SEQS = {"one": masks_one(), "three": masks_three()}


def write_tree(root: Path, seqs: dict[str, list[np.ndarray]] = SEQS) -> Path:
    """A DAVIS tree: JPEG frames, palette annotations, ImageSets/2017/val.txt."""
    rng = np.random.default_rng(0)
    for name, masks in seqs.items():
        for t, m in enumerate(masks):
            frame = (np.where(m == 255, 0, m)[..., None] * 60 + rng.integers(0, 40, (H, W, 3)))
            jpg = root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg"
            jpg.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame.astype(np.uint8)).save(jpg, quality=95)
            ann = root / "Annotations" / "480p" / name / f"{t:05d}.png"
            ann.parent.mkdir(parents=True, exist_ok=True)
            img = Image.fromarray(m, mode="P")
            img.putpalette(PALETTE)
            img.save(ann)
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("".join(f"{s}\n" for s in seqs))
    return root


class Oracle:
    """Tokens = one-hot of the ground-truth id at each patch centre (void as 0) + position / 10.

    It reads the masks of the sequences in the order the evaluation embeds their frames.
    """

    patch = P

    def __init__(self, seqs: dict[str, list[np.ndarray]]):
        self.queue = [m for masks in seqs.values() for m in masks]

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        n, _, h, w = frames.shape
        grids = [self.queue.pop(0)[P // 2::P, P // 2::P] for _ in range(n)]
        ids = torch.from_numpy(np.stack(grids).astype(np.int64)) % 255
        rows, cols = torch.meshgrid(torch.arange(h // P), torch.arange(w // P), indexing="ij")
        pos = torch.stack([rows / (h // P), cols / (w // P)], -1).expand(n, -1, -1, -1)
        return torch.cat([torch.nn.functional.one_hot(ids, 4).float(), 0.1 * pos], -1)


def test_resized_size_is_dinos_rule():
    # short side 480; long 854 * 480 / 480 = 854 floored to a multiple of 64 = 832
    assert resized_size(480, 854, short_side=480, size_multiple=64) == (480, 832)
    assert resized_size(854, 480, short_side=480, size_multiple=64) == (832, 480)
    # DINOv3's 960: 854 * 2 = 1708 -> 1664
    assert resized_size(480, 854, short_side=960, size_multiple=64) == (960, 1664)
    assert resized_size(H, W, **SMALL) == (H, W)


def test_oracle_reaches_the_ceiling_and_writes_the_davis_layout(tmp_path):
    root = write_tree(tmp_path / "davis")
    out = tmp_path / "out"
    res = evaluate_davis(Oracle(SEQS), root=root, out_dir=out, progress=False, chunk=3, **SMALL)
    # Objects are patch-aligned, so the bilinear upsampling of one-hot patch labels keeps every
    # edge; only the pixel at each convex corner is lost (0.625^2 < 1/2): J >= 1 - 4/144 on the
    # smallest (12 x 12) object; F stays 1 within the 1-px tolerance.
    assert res["davis/j_and_f"] >= 0.95, res
    assert res["davis/objects"] == 4 and res["davis/sequences"] == 2
    assert set(res["davis/per_object"]) == {"one_1", "three_1", "three_2", "three_3"}
    # id 3 reappears in frame 7 after three frames out of sight: frames 0-3 of its context hold it
    assert res["davis/per_object"]["three_3"]["J-Mean"] >= 0.95
    for seq, masks in SEQS.items():  # round trip: same names, the input palette, P mode
        names = sorted(p.name for p in (out / seq).glob("*.png"))
        assert names == [f"{t:05d}.png" for t in range(len(masks))]
        for t in (0, T - 1):
            pred, palette = read_annotation(out / seq / f"{t:05d}.png")
            assert palette == PALETTE and pred.shape == (H, W)
            assert set(np.unique(pred)) <= set(range(4))  # no void id is ever written
    assert (out / "global_results-val.csv").read_text().startswith("J&F-Mean,J-Mean,J-Recall")
    assert len((out / "per-sequence_results-val.csv").read_text().splitlines()) == 5
    pictures = sorted((out / "pictures").glob("*.png"))
    assert [p.name for p in pictures] == ["one_00000.png", "one_00003.png", "one_00006.png",
                                          "one_00009.png"]
    with Image.open(pictures[0]) as pic:
        assert pic.mode == "RGB" and pic.size == (W, H)


def test_uninformative_features_predict_background_everywhere(tmp_path):
    # Constant tokens: every affinity ties with the k-th, so every context token votes with the
    # same weight and each token's soft label is the context's label frequencies, the same
    # everywhere; background dominates frame 0, so every frame is background. J = F = 0 where
    # an object is visible, 1 where it is out of sight: only three_3 in frames 4, 5, 6 of the
    # 8 scored ones. J-Mean = F-Mean = (0 + 0 + 0 + 3/8) / 4 objects = 3/32.
    root = write_tree(tmp_path / "davis")

    def constant(frames: torch.Tensor) -> torch.Tensor:
        return torch.ones(frames.shape[0], frames.shape[2] // P, frames.shape[3] // P, 8)

    res = evaluate_davis(constant, root=root, out_dir=tmp_path / "out", patch=P, progress=False,
                         norm_mask=False, pictures=0, **SMALL)
    assert res["davis/j_mean"] == pytest.approx(3 / 32)
    assert res["davis/f_mean"] == pytest.approx(3 / 32)
    assert res["davis/j_recall"] == pytest.approx(3 / 32)
    # three_3 over frames 1..8 (visible in 1, 2, 3, 7, 8): [0, 0, 0, 1, 1, 1, 0, 0]; bins of
    # 8: ids = round(1, 2.75, 4.5, 6.25, 8) - 1 = [0, 2, 4, 5, 7]: bin 0 = v0..v2 = 0,
    # bin 3 = v5..v7 = (1 + 0 + 0) / 3 -> decay -1/3
    assert res["davis/per_object"]["three_3"]["J-Decay"] == pytest.approx(-1 / 3)


def test_random_features_stay_at_chance(tmp_path):
    # Tokens independent of the content give masks independent of the ground truth. A mask of
    # area fraction q placed independently of an object of fraction g overlaps it in q g of the
    # pixels on average, so J ~ q g / (q + g - q g) <= g (the value at q = 1). Here the objects
    # cover g = 192, 144, 144 and 96 px of 960 (one_1, three_1, three_2, three_3), and three_3
    # is out of sight in 3 of 8 frames (J at most 1 there): chance J-Mean <= (0.2 + 0.15 + 0.15
    # + (3 + 5 * 0.1) / 8) / 4 ~ 0.23 (up to sampling noise), far from the oracle's >= 0.95.
    root = write_tree(tmp_path / "davis")
    gen = torch.Generator().manual_seed(0)

    def rand(frames: torch.Tensor) -> torch.Tensor:
        return torch.randn(frames.shape[0], frames.shape[2] // P, frames.shape[3] // P, 64,
                           generator=gen)

    res = evaluate_davis(rand, root=root, out_dir=tmp_path / "out", patch=P, progress=False,
                         pictures=0, **SMALL)
    assert res["davis/j_mean"] <= 0.3, res
    assert res["davis/j_and_f"] <= 0.4, res


@pytest.mark.parametrize("preset", ["dinov3", "crw"])
def test_other_presets_run(tmp_path, preset):
    root = write_tree(tmp_path / "davis", {"three": masks_three()})
    res = evaluate_davis(Oracle({"three": masks_three()}), root=root, out_dir=tmp_path / "o",
                         preset=preset, progress=False, pictures=0, short_side=H, size_multiple=8)
    assert res["davis/j_and_f"] >= 0.95


def test_missing_or_malformed_tree_is_one_config_error(tmp_path):
    root = write_tree(tmp_path / "davis")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"ImageSets/2017/test\.txt.*expected ROOT/JPEGImages"):
        split_sequences(root, "test")
    with pytest.raises(ConfigError, match=r"JPEGImages/480p/nope/00000\.jpg"):
        evaluate_davis(Oracle(SEQS), root=root, out_dir=out, sequences=["nope"])
    bad = root / "Annotations" / "480p" / "one" / "00000.png"
    Image.fromarray(np.zeros((H, W), np.uint8), mode="L").save(bad)
    with pytest.raises(ConfigError, match=r"00000\.png is a 'L' image, not a palette"):
        evaluate_davis(Oracle(SEQS), root=root, out_dir=out, progress=False, **SMALL)
    for kwargs, match in (({"preset": "sam"}, "preset"), ({"topk": 0}, "topk"),
                          ({"neighbourhood": "hex"}, "neighbourhood"), ({"radios": 3}, "radios"),
                          ({"temperature": -1.0}, "temperature")):
        with pytest.raises(ConfigError, match=match):
            evaluate_davis(Oracle(SEQS), root=root, out_dir=out, **kwargs)
    with pytest.raises(ConfigError, match="patch"):
        evaluate_davis(lambda x: x, root=root, out_dir=out)
    with pytest.raises(ConfigError, match=r"feature function returned"):
        evaluate_davis(lambda x: x[:, 0], root=root, out_dir=out, patch=P, progress=False,
                       sequences=["three"], **SMALL)
