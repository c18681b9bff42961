"""Image data sources: ``image_folder`` and ``imagenette`` (local tree or Hugging Face hub).

Everything runs on generated images (the ``image_tree`` fixture of ``conftest.py``) and on a
fake ``datasets`` module: no download, no real data.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

import levyjepa.data.images.lazy_images as lazy_images
from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA
from levyjepa.data.build import build_splits, splits_from
from levyjepa.data.loading.image_source import ImageSource
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.views.photometric import Photometric
from levyjepa.data.views.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    center_view,
    ssl_augmentation,
)

ROOT = Path(__file__).resolve().parents[1]
MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def seed_data(root: Path, *overrides: str) -> DataSplits:
    """The data and views sections of the seed's recipe, read from ``root`` instead of the hub."""
    cfg = load_recipe(ROOT / "recipes" / "image_baseline.yaml", [f"data.root={root}",
                                                                 *overrides])
    return build_splits(cfg)


def unnormalise(x: torch.Tensor) -> torch.Tensor:
    return x * STD + MEAN


def test_seed_views_shape_normalisation_and_difference(image_tree: Path) -> None:
    splits = seed_data(image_tree)
    views, label = splits.train[0]
    assert views.shape == (4, 3, 128, 128) and views.dtype == torch.float32
    assert label == 0
    for i in range(4):  # V independently drawn views
        for j in range(i + 1, 4):
            assert not torch.allclose(views[i], views[j])
    pixels = unnormalise(views)  # back to [0, 1]: the normalisation is ImageNet's
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    assert 0.05 < pixels.mean() < 0.95
    assert -2.2 < views.mean() < 2.7 and 0.05 < views.std() < 3.0  # roughly standardised
    # the augmentation is a function of (seed, epoch, item)
    torch.testing.assert_close(splits.train[0][0], views)
    splits.train.set_epoch(1)
    assert not torch.allclose(splits.train[0][0], views)


def test_seed_augmentation_parameters(image_tree: Path) -> None:
    ops = seed_data(image_tree).train.transform.transforms
    assert [type(op).__name__ for op in ops] == [
        "RandomResizedCrop", "RandomApply", "RandomGrayscale", "RandomApply", "RandomSolarize",
        "RandomHorizontalFlip", "ToImage", "ToDtype", "Normalize"]
    crop, jitter, gray, blur, solarize, flip, _, to_float, norm = ops
    assert list(crop.size) == [128, 128] and crop.scale == (0.08, 1.0)
    assert jitter.p == 0.8 and isinstance(jitter.transforms[0], v2.ColorJitter)
    cj = jitter.transforms[0]
    assert (cj.brightness, cj.contrast, cj.saturation, cj.hue) == (
        pytest.approx((0.2, 1.8)), pytest.approx((0.2, 1.8)), pytest.approx((0.2, 1.8)),
        pytest.approx((-0.2, 0.2)))
    assert gray.p == 0.2
    assert blur.p == 0.5 and list(blur.transforms[0].kernel_size) == [7, 7]
    assert list(blur.transforms[0].sigma) == [0.1, 2.0]
    assert solarize.threshold == 128 and solarize.p == pytest.approx(0.1)
    assert flip.p == 0.5
    assert to_float.dtype == torch.float32 and to_float.scale
    assert list(norm.mean) == list(IMAGENET_MEAN) and list(norm.std) == list(IMAGENET_STD)


def test_solarize_threshold_is_on_the_8_bit_scale() -> None:
    only_solarize = ssl_augmentation(4, crop_scale=(1.0, 1.0), photometric=Photometric(
        color_jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=1.0, flip_p=0.0))
    image = torch.full((3, 4, 4), 100, dtype=torch.uint8)
    image[:, :2] = 200
    expected = torch.full((3, 4, 4), 100 / 255)
    expected[:, :2] = (255 - 200) / 255  # 200 >= 128 is inverted, 100 is kept
    for x in (image, Image.fromarray(image.permute(1, 2, 0).numpy())):
        torch.testing.assert_close(unnormalise(only_solarize(x)), expected, atol=1e-6, rtol=0)


def test_test_view_is_resize_center_crop_normalise(image_tree: Path) -> None:
    grey = Image.new("RGB", (200, 160), (128, 128, 128))  # not square, like the hub's 160px
    view = center_view(128)(grey)
    assert view.shape == (3, 128, 128)
    want = ((128 / 255 - MEAN) / STD).expand(3, 128, 128)
    torch.testing.assert_close(view, want, atol=1e-6, rtol=0)
    test = seed_data(image_tree).test
    image, label = test[0]
    assert image.shape == (3, 128, 128) and label == 0
    torch.testing.assert_close(test[0][0], image)  # deterministic


def test_image_folder_lists_classes_and_decodes_lazily(fresh_image_tree: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    image_tree = fresh_image_tree
    (image_tree / "train" / "class_0" / "notes.txt").write_text("not an image")
    opened: list[str] = []
    real_open = Image.open
    monkeypatch.setattr(lazy_images.Image, "open",
                        lambda path, *a, **k: opened.append(str(path)) or real_open(path, *a, **k))
    splits = splits_from({"name": "image_folder", "root": str(image_tree)},
                         {"name": "seed", "global_size": 16, "global_views": 3})
    assert opened == []  # nothing is decoded when the source is built
    assert splits.num_classes == 2 and len(splits.train) == 8 and len(splits.test) == 4
    assert [int(y) for y in splits.train.labels] == [0] * 4 + [1] * 4
    assert any(p.endswith(".JPEG") for p in splits.train.images.paths)  # any-case extensions
    views, label = splits.train[5]
    assert views.shape == (3, 3, 16, 16) and label == 1
    assert len(opened) == 1  # one decode for the V views of an item
    assert splits.test[3][0].shape == (3, 16, 16) and len(opened) == 2
    assert DATA.build({"name": "image_folder", "root": str(image_tree),
                       "test_split": None}).test is None


def _tree(root: Path, layout: dict[str, list[str]]) -> Path:
    """``{"train/a": ["x.png"], ...}``: folders and (tiny) images."""
    for folder, files in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in files:
            Image.new("RGB", (8, 8)).save(root / folder / name)
    return root


@pytest.mark.parametrize("layout, missing, message", [
    ({}, "nowhere", "does not exist"),
    ({"val/a": ["x.png"]}, "train", "does not exist"),
    ({"train": []}, "train", "has no class sub-folders"),
    ({"train/a": [], "train/b": []}, "train", "holds no images"),
    ({"train/a": ["x.png"], "train/b": []}, "train/b", "holds no images"),
    ({"train/a": ["x.png"]}, "val", "does not exist"),
    ({"train/a": ["x.png"], "val/z": ["y.png"]}, "val", "class folder 'z' is not a class"),
])
def test_image_folder_errors_name_the_folder(tmp_path: Path, layout: dict[str, list[str]],
                                             missing: str, message: str) -> None:
    root = _tree(tmp_path / "data", layout)
    where = tmp_path / "nowhere" if missing == "nowhere" else root
    with pytest.raises(ConfigError, match=message) as err:
        DATA.build({"name": "image_folder", "root": str(where)}, where="data")
    text = str(err.value)
    assert "\n" not in text and (str(where) if missing == "nowhere" else missing) in text


@pytest.mark.parametrize("override, message", [
    ("views.blur_kernel=6", "view pipeline 'seed': blur_kernel must be odd"),
    ("views.solarize_p=1.5", "view pipeline 'seed': solarize_p must be a probability"),
    ("views.global_scale=[0.5,0.2]", r"views.global_scale must be \[low, high\]"),
    ("views.solarize_threshold=300", "solarize_threshold must be in 0..255"),
    ("views.global_views=0", "views.global_views must be an integer >= 1"),
])
def test_bad_augmentation_parameters_are_refused(image_tree: Path, override: str,
                                                 message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        seed_data(image_tree, override)
    assert "\n" not in str(err.value) and "image_baseline.yaml" in str(err.value)


def test_imagenette_with_a_root_reads_the_local_tree(image_tree: Path) -> None:
    local = DATA.build({"name": "imagenette", "root": str(image_tree)})
    assert isinstance(local, ImageSource) and local.image_size is None  # sizes vary
    assert local.num_classes == 2 and len(local.train.images) == 8
    assert len(local.test.labels) == 4


# ---- the Hugging Face hub path, with a fake `datasets` module --------------------------------

class FakeClassLabel:
    num_classes = 10


class FakeHubDataset:
    """Rows ``{"image": PIL, "label": int}``, a ``label`` column and ``features``."""

    def __init__(self, labels: list[int]) -> None:
        self.labels = labels
        self.features = {"image": None, "label": FakeClassLabel()}
        self.rows_read = 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: Any) -> Any:
        if key == "label":
            return list(self.labels)
        self.rows_read += 1
        # grayscale, not square: the source converts to RGB, the views are square
        return {"image": Image.new("L", (50, 40), 30 * key), "label": self.labels[key]}


def fake_datasets(version: str, calls: list[tuple], error: Exception | None = None
                  ) -> types.ModuleType:
    module = types.ModuleType("datasets")
    module.__version__ = version
    splits = {"train": FakeHubDataset([0, 3, 7]), "validation": FakeHubDataset([3, 0])}

    def load_dataset(path: str, name: str | None = None, *, split: str, **kwargs: Any) -> Any:
        calls.append((path, name, split, kwargs))
        if error is not None:
            raise error
        return splits[split]

    module.load_dataset = load_dataset
    return module


def test_imagenette_without_root_loads_the_hub_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets("3.6.0", calls))
    splits = splits_from({"name": "imagenette", "root": None},
                         {"name": "seed", "global_size": 32, "global_views": 2})
    assert calls == [("frgfm/imagenette", "160px", "train", {"trust_remote_code": True}),
                     ("frgfm/imagenette", "160px", "validation", {"trust_remote_code": True})]
    hub_train = splits.train.images.dataset
    assert hub_train.rows_read == 0  # lazily decoded
    assert splits.num_classes == 10 and len(splits.train) == 3 and len(splits.test) == 2
    views, label = splits.train[1]
    assert views.shape == (2, 3, 32, 32) and label == 3 and hub_train.rows_read == 1
    image, label = splits.test[0]
    assert image.shape == (3, 32, 32) and label == 3


def test_imagenette_hub_with_the_seed_datasets_version(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets("2.14.6", calls))
    DATA.build({"name": "imagenette"})
    assert calls[0] == ("frgfm/imagenette", "160px", "train", {})  # no trust_remote_code yet


def test_imagenette_hub_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(ConfigError, match=r"pip install 'levyjepa\[hub\]'.*data\.root"):
        DATA.build({"name": "imagenette"}, where="data")
    calls: list[tuple] = []
    monkeypatch.setitem(sys.modules, "datasets",
                        fake_datasets("3.6.0", calls, ConnectionError("no network\nmore")))
    with pytest.raises(ConfigError, match="ConnectionError: no network; set data.root") as err:
        DATA.build({"name": "imagenette"}, where="data")
    assert "\n" not in str(err.value)
