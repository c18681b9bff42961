"""PASCAL VOC 2012 and ADE20K (SceneParsing) semantic segmentation, read in their own layouts.

VOC 2012 (Everingham et al., "The PASCAL Visual Object Classes Challenge", IJCV 2010): under
``root`` (the ``VOC2012`` folder of ``VOCdevkit``) ``JPEGImages/<id>.jpg``,
``SegmentationClass/<id>.png`` (palette PNGs whose pixel value is the class, 0 background to 20,
255 the void band around objects) and ``ImageSets/Segmentation/{train,val}.txt`` (one id a line).
21 classes, ignore index 255.

ADE20K (Zhou et al., "Scene Parsing through ADE20K Dataset", CVPR 2017), the
``ADEChallengeData2016`` release: ``images/{training,validation}/<name>.jpg`` and
``annotations/{training,validation}/<name>.png`` (8-bit grey, 0 = "other", 1..150 the classes).
As in the public evaluation code (mmsegmentation's ``reduce_zero_label``), raw 0 is ignored and
every other label moves down by one: 150 classes ``0..149``, ignore index 255.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from levyjepa.core.errors import ConfigError

IGNORE_INDEX = 255
"""The label of pixels left out of the loss and of the scores, in both datasets."""

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van",
    "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light",
    "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower",
    "radiator", "glass", "clock", "flag",
)

DATASETS = ("voc2012", "ade20k")
SPLITS = ("train", "val")

_VOC_LAYOUT = ("VOC 2012 layout: ROOT/JPEGImages/<id>.jpg, ROOT/SegmentationClass/<id>.png, "
               "ROOT/ImageSets/Segmentation/{train,val}.txt")
_ADE_LAYOUT = ("ADE20K layout: ROOT/ADEChallengeData2016/images/{training,validation}/<name>.jpg "
               "and ROOT/ADEChallengeData2016/annotations/{training,validation}/<name>.png "
               "(ROOT may also be the ADEChallengeData2016 folder itself)")


@dataclass(frozen=True)
class SegmentationSet:
    """One split of a semantic-segmentation benchmark: matched image and label files.

    Attributes:
        name: ``voc2012`` or ``ade20k``.
        split: ``train`` or ``val``.
        images: The image files (JPEG), sorted by name.
        labels: The annotation files (PNG), one per image, same order.
        classes: The class names; label ``k`` is ``classes[k]``.
    """

    name: str
    split: str
    images: tuple[Path, ...]
    labels: tuple[Path, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image ``index`` and its label map.

        Returns:
            float32 ``(3, H, W)`` RGB in ``[0, 1]`` and int64 ``(H, W)`` labels in
            ``[0, classes)`` or :data:`IGNORE_INDEX`.

        Raises:
            ConfigError: A file that cannot be decoded, labels outside the dataset's range, or an
                annotation whose size differs from its image's.
        """
        image, label = self.images[index], self.labels[index]
        try:
            with Image.open(image) as im:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
            with Image.open(label) as im:
                if im.mode not in ("P", "L"):
                    raise ConfigError(f"{label}: annotation mode {im.mode!r}; expected a palette "
                                      "('P') or grey ('L') PNG whose pixel value is the class")
                raw = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"{image.name}/{label.name}: cannot be read ({err})") from None
        if raw.shape != rgb.shape[:2]:
            raise ConfigError(f"{label}: annotation size {raw.shape} != image size {rgb.shape[:2]}")
        target = convert_labels(torch.from_numpy(raw.astype(np.int64)), self.name)
        bad = (target != IGNORE_INDEX) & (target >= len(self.classes))
        if bad.any():
            raise ConfigError(f"{label}: label {int(target[bad].max())} outside 0..."
                              f"{len(self.classes) - 1} (and {IGNORE_INDEX} ignored)")
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255
        return x, target


def convert_labels(raw: torch.Tensor, dataset: str) -> torch.Tensor:
    """Map an annotation's raw pixel values to training labels.

    VOC: unchanged (0..20, 255 ignored). ADE20K: raw ``0`` ("other") -> :data:`IGNORE_INDEX`,
    raw ``k >= 1`` -> ``k - 1``.

    Args:
        raw: Integer ``(H, W)`` raw pixel values.
        dataset: ``voc2012`` or ``ade20k``.

    Returns:
        int64 ``(H, W)``.
    """
    raw = raw.long()
    if dataset == "ade20k":
        return torch.where(raw == 0, torch.full_like(raw, IGNORE_INDEX), raw - 1)
    return raw


def open_segmentation_set(dataset: str, root: str | Path, split: str, *,
                          limit: int | None = None) -> SegmentationSet:
    """Check a benchmark tree and list one split's files.

    Args:
        dataset: ``voc2012`` or ``ade20k``.
        root: The VOC ``VOC2012`` folder, or the folder holding ``ADEChallengeData2016`` (or
            that folder itself).
        split: ``train`` or ``val`` (ADE20K's ``training`` / ``validation``).
        limit: Keep only the first ``limit`` images (in id / name order), or all if ``None``.

    Returns:
        The split's :class:`SegmentationSet`.

    Raises:
        ConfigError: One line naming the missing folder or file and the expected layout.
    """
    if dataset not in DATASETS:
        raise ConfigError(f"dataset={dataset!r}: expected one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ConfigError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"max images={limit!r}: expected a positive integer or None")
    root = Path(root)
    images, labels = _voc_files(root, split) if dataset == "voc2012" else _ade_files(root, split)
    if not images:
        layout = _VOC_LAYOUT if dataset == "voc2012" else _ADE_LAYOUT
        raise ConfigError(f"{root}: the {split} split has no image; expected the {layout}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    classes = VOC_CLASSES if dataset == "voc2012" else ADE20K_CLASSES
    return SegmentationSet(dataset, split, tuple(images), tuple(labels), classes)


def _require(path: Path, layout: str, kind: str = "folder") -> None:
    ok = path.is_dir() if kind == "folder" else path.is_file()
    if not ok:
        raise ConfigError(f"missing {kind} {path}; expected the {layout}")


def _voc_files(root: Path, split: str) -> tuple[list[Path], list[Path]]:
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        _require(root / sub, _VOC_LAYOUT)
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    _require(listing, _VOC_LAYOUT, "file")
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    images = [root / "JPEGImages" / f"{i}.jpg" for i in ids]
    labels = [root / "SegmentationClass" / f"{i}.png" for i in ids]
    for path in (*images, *labels):
        if not path.is_file():
            raise ConfigError(f"missing file {path} (listed in {listing}); expected the "
                              f"{_VOC_LAYOUT}")
    return images, labels


def _ade_files(root: Path, split: str) -> tuple[list[Path], list[Path]]:
    base = root if root.name == "ADEChallengeData2016" else root / "ADEChallengeData2016"
    sub = "training" if split == "train" else "validation"
    _require(base / "images" / sub, _ADE_LAYOUT)
    _require(base / "annotations" / sub, _ADE_LAYOUT)
    images = sorted((base / "images" / sub).glob("*.jpg"))
    labels = [base / "annotations" / sub / f"{p.stem}.png" for p in images]
    for path in labels:
        if not path.is_file():
            raise ConfigError(f"missing file {path} (the annotation of images/{sub}/{path.stem}"
                              f".jpg); expected the {_ADE_LAYOUT}")
    return images, labels
