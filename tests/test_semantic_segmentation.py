"""levyjepa.eval.benchmarks semantic segmentation: VOC 2012 / ADE20K trees, mIoU, the probe.

The tests write tiny VOC 2012 and ADE20K trees in their exact layouts. Every image is made of
horizontal (or vertical) bands of whole 8-pixel patch rows (columns), one flat colour per class,
so every 8 x 8 patch is class-pure and no corner joins three classes: an oracle reading a patch's
colour knows its class exactly, and the bilinear upsampling of its logits can be exact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from levyjepa.core.errors import ConfigError
from levyjepa.eval.benchmarks.semantic_segmentation import evaluate_semantic_segmentation
from levyjepa.eval.benchmarks.semseg_data import (
    ADE20K_CLASSES,
    VOC_CLASSES,
    open_segmentation_set,
)
from levyjepa.eval.benchmarks.semseg_probe import (
    evaluate_head,
    learning_rate,
    sliding_logits,
    window_starts,
)
from levyjepa.eval.dense_metrics import confusion_matrix, segmentation_scores
from levyjepa.eval.segmentation_probe import LinearSegmentationHead

P = 8  # patch side of the test feature functions
H, W = 40, 48  # image size: 5 x 6 patches

# Flat colour of each (raw) label in the fixtures; ADE raw 0 ("other") is yellow.
VOC_COLOURS = {0: (20, 20, 20), 12: (230, 30, 30), 15: (30, 200, 40)}
ADE_COLOURS = {0: (220, 220, 40), 1: (20, 20, 20), 3: (40, 60, 230), 13: (230, 30, 30)}

# Images: (orientation, [(raw label, patch rows or columns), ...], [ignored pixel rows]).
VOC_TRAIN = [
    ("h", [(0, 3), (15, 2)], []),
    ("h", [(0, 3), (12, 2)], [23]),
    ("h", [(12, 2), (0, 3)], []),
    ("v", [(15, 2), (0, 3), (12, 1)], []),
]
# Val counts (ignore = the pixel row set to 255):
#   image 0: class 0 rows 0-22 -> 23 * 48 = 1104 px, row 23 ignored, class 15 16 * 48 = 768 px;
#   image 1: class 0 16 * 48 = 768 px, class 12 rows 16-38 -> 23 * 48 = 1104 px, row 39 ignored.
#   Totals: class 0 1872, class 12 1104, class 15 768; 3744 labelled pixels.
VOC_VAL = [
    ("h", [(0, 3), (15, 2)], [23]),
    ("h", [(0, 2), (12, 3)], [39]),
]
ADE_TRAIN = [
    ("h", [(1, 3), (3, 2)], []),
    ("h", [(0, 1), (1, 2), (13, 2)], []),
    ("v", [(13, 2), (1, 3), (3, 1)], []),
    ("h", [(3, 1), (1, 4)], []),
]
# Val: image 0 raw 1 (-> class 0) 24 * 48 = 1152 px, raw 3 (-> class 2) 16 * 48 = 768 px;
#      image 1 raw 0 (ignored) 384 px, raw 1 8 * 48 = 384 px, raw 13 (-> class 12) 1152 px.
ADE_VAL = [
    ("h", [(1, 3), (3, 2)], []),
    ("h", [(0, 1), (1, 1), (13, 3)], []),
]


def band_image(spec: tuple, colours: dict[int, tuple[int, int, int]]) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """RGB ``(H, W, 3)`` and raw label ``(H, W)`` arrays of one band specification."""
    orient, bands, ignored = spec
    n = H if orient == "h" else W
    line = np.concatenate([np.full(k * P, label) for label, k in bands])
    assert line.size == n, spec
    raw = np.repeat(line[:, None], W, 1) if orient == "h" else np.repeat(line[None], H, 0)
    rgb = np.array([colours[v] for v in range(256) if v in colours], dtype=np.uint8)
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[sorted(colours)] = rgb
    image = lut[raw]
    raw = raw.astype(np.uint8)
    raw[ignored] = 255
    return image, raw


def write_voc(root: Path) -> Path:
    """``root/{JPEGImages,SegmentationClass,ImageSets/Segmentation}`` of the VOC fixture."""
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "SegmentationClass").mkdir()
    palette = [v for k in range(256) for v in VOC_COLOURS.get(k, (k, k, k))]
    for split, specs in (("train", VOC_TRAIN), ("val", VOC_VAL)):
        ids = [f"2007_{split}_{i:03d}" for i in range(len(specs))]
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for i, spec in zip(ids, specs):
            image, raw = band_image(spec, VOC_COLOURS)
            Image.fromarray(image).save(root / "JPEGImages" / f"{i}.jpg", quality=95,
                                        subsampling=0)
            label = Image.fromarray(raw)
            label.putpalette(palette)  # an 'L' image becomes a palette ('P') PNG
            label.save(root / "SegmentationClass" / f"{i}.png")
    return root


def write_ade(root: Path) -> Path:
    """``root/ADEChallengeData2016/{images,annotations}/{training,validation}`` of the fixture."""
    base = root / "ADEChallengeData2016"
    for split, specs in (("training", ADE_TRAIN), ("validation", ADE_VAL)):
        (base / "images" / split).mkdir(parents=True)
        (base / "annotations" / split).mkdir(parents=True)
        for j, spec in enumerate(specs):
            image, raw = band_image(spec, ADE_COLOURS)
            name = f"ADE_{'train' if split == 'training' else 'val'}_{j + 1:08d}"
            Image.fromarray(image).save(base / "images" / split / f"{name}.jpg", quality=95,
                                        subsampling=0)
            Image.fromarray(raw).save(base / "annotations" / split / f"{name}.png")
    return root


class ColourOracle:
    """Features that one-hot encode the fixture colour nearest to each patch's mean colour.

    The colour determines the class, so the tokens encode the ground truth of class-pure patches.
    """

    def __init__(self, colours: dict[int, tuple[int, int, int]], patch: int = P) -> None:
        self.table = torch.tensor([colours[k] for k in sorted(colours)], dtype=torch.float32)
        self.patch = patch

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        n, _, h, w = frames.shape
        p = self.patch
        mean = frames.reshape(n, 3, h // p, p, w // p, p).mean((3, 5)).permute(0, 2, 3, 1) * 255
        nearest = torch.cdist(mean.reshape(-1, 3), self.table).argmin(1)
        onehot = torch.nn.functional.one_hot(nearest, len(self.table)).float()
        return onehot.reshape(n, h // p, w // p, len(self.table))


class RandomFeatures:
    """Features independent of the image: i.i.d. standard normal tokens from a seeded stream."""

    def __init__(self, dim: int = 8, patch: int = P, seed: int = 0) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.dim, self.patch = dim, patch

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        n, _, h, w = frames.shape
        return torch.randn(n, h // self.patch, w // self.patch, self.dim, generator=self.gen)


# A few hundred pixels need a larger lr than the protocol's 1e-3 to converge in 200 steps.
FAST = {"iterations": 200, "batch_size": 8, "crop": 16, "stride": 8, "base_size": None,
        "lr": 3e-2, "warmup": 10, "progress": False}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> object:
    """Tiny tensors: one thread is faster than several on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_voc(tmp_path_factory.mktemp("voc") / "VOC2012")


@pytest.fixture(scope="module")
def ade(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ade(tmp_path_factory.mktemp("ade"))


def constant_head(classes: int, winner: int, dim: int = 3) -> LinearSegmentationHead:
    """A head whose logits are ``e_winner`` everywhere (zero weights)."""
    head = LinearSegmentationHead(dim, classes)
    with torch.no_grad():
        head.conv.weight.zero_()
        head.conv.bias.zero_()
        head.conv.bias[winner] = 1.0
    return head.eval()


def test_class_lists() -> None:
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[15] == "person"
    assert len(ADE20K_CLASSES) == 150 and len(set(ADE20K_CLASSES)) == 150
    assert ADE20K_CLASSES[0] == "wall" and ADE20K_CLASSES[12] == "person"


def test_voc_tree_reads_palette_labels_and_ignore(voc: Path) -> None:
    val = open_segmentation_set("voc2012", voc, "val")
    assert len(val) == 2 and val.classes == VOC_CLASSES
    image, label = val.load(0)
    assert image.shape == (3, H, W) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    with Image.open(val.labels[0]) as im:
        assert im.mode == "P"
    assert (label[23] == 255).all() and (label[:23] == 0).all() and (label[24:] == 15).all()


def test_ade_labels_shift_down_and_zero_is_ignored(ade: Path, tmp_path: Path) -> None:
    val = open_segmentation_set("ade20k", ade, "val")
    _, label = val.load(1)
    # raw 0 ("other") -> 255, raw 1 (wall) -> 0, raw 13 (person) -> 12
    assert (label[:8] == 255).all() and (label[8:16] == 0).all() and (label[16:] == 12).all()
    # the ADEChallengeData2016 folder itself is accepted as the root, and raw 150 -> 149
    base = write_ade(tmp_path) / "ADEChallengeData2016"
    raw = np.array([[0, 1, 2, 150]], dtype=np.uint8).repeat(2, 0)
    Image.fromarray(raw).save(base / "annotations" / "validation" / "ADE_val_00000001.png")
    Image.fromarray(np.zeros((2, 4, 3), np.uint8)).save(
        base / "images" / "validation" / "ADE_val_00000001.jpg")
    _, label = open_segmentation_set("ade20k", base, "val").load(0)
    assert label[0].tolist() == [255, 0, 1, 149]


def test_missing_or_malformed_trees_name_the_file(voc: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing folder .*JPEGImages.*VOC 2012 layout"):
        open_segmentation_set("voc2012", tmp_path, "train")
    with pytest.raises(ConfigError, match=r"missing folder .*images/training.*ADE20K layout"):
        open_segmentation_set("ade20k", tmp_path, "train")
    with pytest.raises(ConfigError, match="dataset='coco'"):
        open_segmentation_set("coco", voc, "train")
    bad = write_voc(tmp_path / "bad")
    (bad / "SegmentationClass" / "2007_val_001.png").unlink()
    with pytest.raises(ConfigError, match=r"missing file .*2007_val_001\.png \(listed in"):
        open_segmentation_set("voc2012", bad, "val")
    Image.fromarray(np.full((H, W), 30, np.uint8)).save(
        bad / "SegmentationClass" / "2007_val_001.png")
    with pytest.raises(ConfigError, match=r"label 30 outside 0\.\.\.20"):
        open_segmentation_set("voc2012", bad, "val").load(1)
    with pytest.raises(ConfigError, match="crop=12: expected a multiple of the patch size 8"):
        evaluate_semantic_segmentation(ColourOracle(VOC_COLOURS), dataset="voc2012", root=voc,
                                       out_dir=tmp_path, crop=12)


def test_miou_hand_computed_with_ignore() -> None:
    # gt   [[0, 0, 1], [1, 255, 2]]   pred [[0, 1, 1], [1, 0, 1]]   (C = 4, class 3 nowhere)
    # class 0: TP 1, FP 0 (the ignored pixel's 0 is not counted), FN 1 -> 1/2
    # class 1: TP 2, FP 2 (the 0 -> 1 and the 2 -> 1 pixels), FN 0  -> 2/4
    # class 2: TP 0, FP 0, FN 1 -> 0 ; class 3: 0/0 -> absent, excluded
    # mIoU = (1/2 + 1/2 + 0) / 3 = 1/3 ; pixel acc = 3 correct / 5 labelled
    gt = torch.tensor([[0, 0, 1], [1, 255, 2]])
    pred = torch.tensor([[0, 1, 1], [1, 0, 1]])
    s = segmentation_scores(confusion_matrix(pred, gt, classes=4))
    assert s["miou"] == pytest.approx(1 / 3) and s["pixel_acc"] == pytest.approx(3 / 5)
    assert s["iou"][:3] == pytest.approx([0.5, 0.5, 0.0]) and math.isnan(s["iou"][3])


@pytest.mark.parametrize(("winner", "expected"), [
    # Val set: class 0 1872 px, class 12 1104 px, class 15 768 px, 3744 labelled (255 excluded).
    # Always 0: IoU_0 = 1872 / 3744 = 1/2, IoU_12 = IoU_15 = 0 -> mIoU = (1/2) / 3 = 1/6.
    (0, {"miou": 1 / 6, "pixel_acc": 0.5, 0: 0.5, 12: 0.0, 15: 0.0}),
    # Always 15: IoU_15 = 768 / 3744 = 0.2051..., others 0 -> mIoU = 0.2051 / 3 = 0.06838.
    (15, {"miou": 768 / 3744 / 3, "pixel_acc": 768 / 3744, 0: 0.0, 12: 0.0, 15: 768 / 3744}),
    # Always 7 (in no ground truth): IoU_7 = 0 / 3744 counts -> mIoU = 0 over 4 classes.
    (7, {"miou": 0.0, "pixel_acc": 0.0, 0: 0.0, 7: 0.0}),
])
def test_whole_set_miou_of_constant_predictions(voc: Path, winner: int, expected: dict) -> None:
    val = open_segmentation_set("voc2012", voc, "val")
    cm, _ = evaluate_head(constant_head(21, winner, dim=3), ColourOracle(VOC_COLOURS), val,
                          patch=P, crop=16, stride=8, base_size=None, progress=False)
    # the same with the images rescaled (short side 24) before the windows: constant logits
    rescaled, _ = evaluate_head(constant_head(21, winner, dim=3), ColourOracle(VOC_COLOURS), val,
                                patch=P, crop=16, stride=8, base_size=24, progress=False)
    assert torch.equal(cm, rescaled)
    s = segmentation_scores(cm)
    assert s["miou"] == pytest.approx(expected["miou"])
    assert s["pixel_acc"] == pytest.approx(expected["pixel_acc"])
    for k, v in expected.items():
        if isinstance(k, int):
            assert s["iou"][k] == pytest.approx(v)
    assert sum(s["present"]) == (4 if winner == 7 else 3)


def test_window_starts_cover_the_side() -> None:
    # 50 px, crop 16, stride 10: (50 - 16 + 9) // 10 + 1 = 5 windows at 0, 10, 20, 30 and the
    # last one shifted back from 40 to 50 - 16 = 34.
    assert window_starts(50, 16, 10) == [0, 10, 20, 30, 34]
    assert window_starts(16, 16, 10) == [0] and window_starts(12, 16, 10) == [0]
    assert window_starts(512, 512, 341) == [0] and window_starts(683, 512, 341) == [0, 171]


def test_sliding_window_equals_direct_evaluation_for_an_equivariant_head() -> None:
    # Per-pixel features (patch 1) and a 1x1 head are translation-equivariant and the upsampling
    # is the identity: every window's logits equal the full image's, so their average does too.
    torch.manual_seed(0)
    image = torch.rand(3, 37, 50)
    pixelwise = lambda x: torch.cat([x, x.square(), x.sin()], 1).permute(0, 2, 3, 1)  # noqa: E731
    head = LinearSegmentationHead(9, 5).eval()
    with torch.no_grad():
        head.bn.running_mean.uniform_(-1, 1)
        head.bn.running_var.uniform_(0.5, 2)
        direct = head(pixelwise(image[None]), (37, 50))[0]
    slid = sliding_logits(head, pixelwise, image, patch=1, crop=16, stride=10)
    assert slid.shape == (5, 37, 50)
    torch.testing.assert_close(slid, direct, rtol=1e-5, atol=1e-5)
    # patch 8, a side shorter than the crop and not a multiple of the patch: padded, covered
    out = sliding_logits(head.__class__(3, 21).eval(), ColourOracle(VOC_COLOURS), image[:, :12],
                         patch=P, crop=16, stride=8)
    assert out.shape == (21, 12, 50) and torch.isfinite(out).all()


def test_learning_rate_schedule() -> None:
    lr, low = 1e-3, 1e-3 / 25_000
    assert learning_rate(0, lr=lr, iterations=10, warmup=4) == pytest.approx(low)
    assert learning_rate(2, lr=lr, iterations=10, warmup=4) == pytest.approx(low + (lr - low) / 2)
    # after the warm-up: cosine of (step + 1) / iterations; step 4 -> (1 + cos(pi/2)) / 2 = 1/2
    assert learning_rate(4, lr=lr, iterations=10, warmup=0) == pytest.approx(low + (lr - low) / 2)
    assert learning_rate(9, lr=lr, iterations=10, warmup=0) == pytest.approx(low)


@pytest.mark.parametrize("dataset", ["voc2012", "ade20k"])
def test_oracle_features_reach_the_ceiling(voc: Path, ade: Path, tmp_path: Path,
                                           dataset: str) -> None:
    root, colours = (voc, VOC_COLOURS) if dataset == "voc2012" else (ade, ADE_COLOURS)
    res = evaluate_semantic_segmentation(ColourOracle(colours), dataset=dataset, root=root,
                                         out_dir=tmp_path, **FAST)
    assert res["semseg/miou"] >= 0.99 and res["semseg/pixel_acc"] >= 0.99
    per_class = res["semseg/per_class_iou"]
    present = {"voc2012": ["background", "dog", "person"], "ade20k": ["wall", "sky", "person"]}
    assert sorted(k for k, v in per_class.items() if v is not None) == sorted(present[dataset])
    assert (tmp_path / "pictures" / f"semantic_segmentation_{dataset}.png").is_file()
    saved = json.loads((tmp_path / f"semantic_segmentation_{dataset}.json").read_text())
    assert saved["results"]["semseg/miou"] == pytest.approx(res["semseg/miou"])


def test_random_features_reach_the_majority_level(voc: Path, tmp_path: Path) -> None:
    # Tokens independent of the image can only learn the class prior: the head predicts the
    # training majority class (background) everywhere, which scores mIoU 1/6 and pixel acc 1/2 on
    # the val set (see test_whole_set_miou_of_constant_predictions).
    res = evaluate_semantic_segmentation(RandomFeatures(), dataset="voc2012", root=voc,
                                         out_dir=tmp_path, **FAST)
    assert res["semseg/miou"] == pytest.approx(1 / 6, abs=0.02)
    assert res["semseg/pixel_acc"] == pytest.approx(0.5, abs=0.03)
