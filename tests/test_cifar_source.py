"""The ``cifar`` source reads torchvision's CIFAR-10 and CIFAR-100 files (written here, tiny), in
torchvision's pixel order, never downloading; a class-per-folder copy is ``image_folder``'s."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import CIFAR10, CIFAR100

from levyjepa.core.errors import ConfigError
from levyjepa.data.build import splits_from
from levyjepa.data.images.cifar import cifar
from levyjepa.data.images.image_folder import image_folder

# per variant: folder, training files, test files and the label keys of torchvision's format
FILES = {"cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                     ["test_batch"], ("labels",)),
         "cifar100": ("cifar-100-python", ["train"], ["test"], ("fine_labels", "coarse_labels"))}


def write_cifar(root: Path, variant: str, *, per_file: int = 3, bytes_keys: bool = False,
                seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Write tiny CIFAR files in torchvision's format under ``root``; returns what was written
    per split: ``data`` ``(n, 3072)`` uint8 and each label key's ``(n,)`` labels.

    ``bytes_keys``: the dict's keys as ``bytes`` (the real files, pickled by Python 2, have
    ``str`` keys that load as ``str`` with ``encoding="latin1"``; both must be read)."""
    folder, train, test, keys = FILES[variant]
    (root / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written: dict[str, dict[str, list[np.ndarray]]] = {"train": {}, "test": {}}
    for split, names in (("train", train), ("test", test)):
        for name in names:
            entry = {"data": rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8)}
            for key in keys:  # fine labels < 100 (10), coarse < 20
                high = 20 if key == "coarse_labels" else (100 if variant == "cifar100" else 10)
                entry[key] = [int(y) for y in rng.integers(0, high, size=per_file)]
            for key, value in entry.items():
                written[split].setdefault(key, []).append(np.asarray(value))
            pickled = {k.encode() if bytes_keys else k: v for k, v in entry.items()}
            with (root / folder / name).open("wb") as f:
                pickle.dump(pickled, f)
    return {split: {k: np.concatenate(v) for k, v in parts.items()}
            for split, parts in written.items()}


def expected_pixel(data: np.ndarray, i: int, c: int, y: int, x: int) -> int:
    """The format's definition: row ``i`` holds the red, green, blue 32 x 32 planes in turn,
    each row-major."""
    return int(data[i, c * 1024 + y * 32 + x])


@pytest.mark.parametrize("variant, bytes_keys", [("cifar10", True), ("cifar100", False)])
def test_images_and_labels_are_the_written_ones(variant: str, bytes_keys: bool,
                                                tmp_path: Path) -> None:
    written = write_cifar(tmp_path, variant, bytes_keys=bytes_keys)
    source = cifar(root=str(tmp_path), variant=variant)
    train_files = len(FILES[variant][1])
    assert source.train.images.shape == (3 * train_files, 3, 32, 32)
    assert source.test.images.shape == (3, 3, 32, 32)
    assert source.train.images.dtype == torch.uint8 and source.image_size == 32
    assert source.num_classes == (10 if variant == "cifar10" else 100)
    key = "labels" if variant == "cifar10" else "fine_labels"
    for split, part in (("train", source.train), ("test", source.test)):
        assert part.labels.tolist() == written[split][key].tolist()
        data = written[split]["data"]
        for i in range(len(data)):  # every pixel, from the format's definition
            want = [[[expected_pixel(data, i, c, y, x) for x in range(32)] for y in range(32)]
                    for c in range(3)]
            assert part.images[i].tolist() == want


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
def test_the_pixels_are_torchvisions(variant: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's own reader on the same files (its checksums skipped: these files are ours),
    (N, 3, 32, 32) then transposed to HWC: the same images as ours, transposed back."""
    write_cifar(tmp_path, variant, seed=1)
    reader = CIFAR10 if variant == "cifar10" else CIFAR100
    monkeypatch.setattr(reader, "_check_integrity", lambda self: True)
    monkeypatch.setattr(reader, "_load_meta", lambda self: None)
    ours = cifar(root=str(tmp_path), variant=variant)
    for train, part in ((True, ours.train), (False, ours.test)):
        theirs = reader(str(tmp_path), train=train, download=False)
        assert np.array_equal(part.images.permute(0, 2, 3, 1).numpy(), theirs.data)
        assert part.labels.tolist() == list(theirs.targets)


def test_cifar100_coarse_labels(tmp_path: Path) -> None:
    written = write_cifar(tmp_path, "cifar100")
    source = cifar(root=str(tmp_path / "cifar-100-python"), variant="cifar100",
                   labels="coarse")  # the dataset folder itself is a root too
    assert source.num_classes == 20
    assert source.train.labels.tolist() == written["train"]["coarse_labels"].tolist()
    assert source.test.labels.tolist() == written["test"]["coarse_labels"].tolist()


@pytest.mark.parametrize("variant, missing, getter", [
    ("cifar10", "cifar-10-batches-py/data_batch_1", "CIFAR10"),
    ("cifar100", "cifar-100-python/train", "CIFAR100"),
])
def test_a_missing_file_is_one_line_naming_it_and_nothing_is_downloaded(
        variant: str, missing: str, getter: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        cifar(root=str(tmp_path), variant=variant)
    message = str(err.value)
    assert "\n" not in message
    assert f"'{tmp_path / missing}' not found" in message
    assert f"torchvision.datasets.{getter}(root, download=True)" in message
    assert list(tmp_path.iterdir()) == []  # nothing written: no download
    # one test file missing among present training files: that file is named
    write_cifar(tmp_path, variant)
    last = tmp_path / FILES[variant][0] / FILES[variant][2][0]
    last.unlink()
    with pytest.raises(ConfigError, match=re.escape(f"'{last}' not found")):
        cifar(root=str(tmp_path), variant=variant)


@pytest.mark.parametrize("section, message", [
    ({"variant": "cifar1000"}, "data.variant must be one of cifar10, cifar100, got 'cifar1000'"),
    ({"variant": "cifar10", "labels": "coarse"},
     "data.labels must be one of fine for cifar10, got 'coarse'"),
])
def test_bad_settings_are_refused(section: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        cifar(root=str(tmp_path), **section)


def test_a_malformed_file_is_named(tmp_path: Path) -> None:
    write_cifar(tmp_path, "cifar100")
    path = tmp_path / "cifar-100-python" / "test"
    with path.open("wb") as f:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "fine_labels": [0, 1]}, f)
    with pytest.raises(ConfigError, match=re.escape(f"'{path}': data must be uint8 (n, 3072)")):
        cifar(root=str(tmp_path), variant="cifar100")


@pytest.mark.parametrize("views", [
    {"name": "seed", "global_views": 2, "global_size": 32, "local_views": 2, "local_size": 16},
    {"name": "light", "global_views": 2},
])
def test_views_of_cifar_images_and_the_test_split(views: dict, tmp_path: Path) -> None:
    write_cifar(tmp_path, "cifar10")
    splits = splits_from({"name": "cifar", "root": str(tmp_path), "variant": "cifar10"}, views)
    item, label = splits.train[0]
    glob = item[0] if isinstance(item, tuple) else item
    assert glob.shape == (2, 3, 32, 32) and glob.dtype == torch.float32
    assert len(splits.train) == 15 and len(splits.test) == 3 and 0 <= label < 10
    image, _ = splits.test[0]
    assert image.shape == (3, 32, 32)


def test_a_class_per_folder_copy_is_read_by_image_folder(tmp_path: Path) -> None:
    """``train/<class>/*.png`` and ``test/<class>/*.png`` (an exported CIFAR copy)."""
    rng = np.random.default_rng(0)
    pixels = {}
    for split in ("train", "test"):
        for name in ("apple", "bear"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            hwc = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(hwc).save(folder / "0.png")
            pixels[split, name] = hwc
    source = image_folder(root=str(tmp_path), test_split="test")
    assert source.num_classes == 2 and source.test.labels.tolist() == [0, 1]
    assert np.array_equal(np.asarray(source.test.images[1].convert("RGB")),
                          pixels["test", "bear"])
