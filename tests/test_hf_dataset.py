"""``hf_dataset``: a Hugging Face dataset saved on disk or a local folder ``datasets`` reads.

The datasets are written by the tests (8 px PNGs made with PIL): a ``DatasetDict`` saved with
``save_to_disk``, the same images as an ``imagefolder`` tree and as parquet files. Nothing is
downloaded. The items must be ``image_folder``'s on the same images, views included.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_train import ROOT, TINY_IMAGES, read_metrics, tiny
from torch.utils.data import DataLoader

import levyjepa.data.images.lazy_images as lazy_images
from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA
from levyjepa.data.build import splits_from
from levyjepa.data.images.hf_dataset import MISSING_PACKAGE
from levyjepa.data.images.lazy_images import UnreadableImage
from levyjepa.data.loading.skipped_files import skipped_files_metric
from levyjepa.training.loop import train

datasets = pytest.importorskip("datasets")  # the test extra installs it

CLASSES = ("cat", "dog")
PER_CLASS = {"train": 3, "val": 1}
SEED_VIEWS = {"name": "seed", "global_size": 16, "global_views": 2}
GARBAGE = np.random.default_rng(1).bytes(300)  # not an image
CORRUPT_ROW = 2


def pictures() -> dict[str, list[tuple[Image.Image, int, str]]]:
    """``{split: [(8 px RGB image, label, file name), ...]}`` in ``image_folder``'s order."""
    rng = np.random.default_rng(0)
    return {split: [(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)), label,
                     f"img_{i}.png")
                    for label in range(len(CLASSES)) for i in range(count)]
            for split, count in PER_CLASS.items()}


def write_tree(root: Path, *, corrupt: bool = False) -> Path:
    """``root/{train,val}/<class>/img_<i>.png`` (training row ``CORRUPT_ROW``: garbage)."""
    for split, rows in pictures().items():
        for row, (image, label, name) in enumerate(rows):
            path = root / split / CLASSES[label] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if corrupt and split == "train" and row == CORRUPT_ROW:
                path.write_bytes(GARBAGE)
            else:
                image.save(path)
    return root


def dataset_dict(*, corrupt: bool = False, label_feature: object = None) -> object:
    """The same images as a ``DatasetDict`` (``train``, ``validation``) with an ``Image`` and a
    ``ClassLabel`` column (or ``label_feature``)."""
    features = datasets.Features({
        "image": datasets.Image(),
        "label": label_feature or datasets.ClassLabel(names=list(CLASSES))})
    splits = {}
    for split, rows in pictures().items():
        images = [image for image, _, _ in rows]
        if corrupt and split == "train":
            images[CORRUPT_ROW] = {"bytes": GARBAGE, "path": None}
        splits["validation" if split == "val" else split] = datasets.Dataset.from_dict(
            {"image": images, "label": [label for _, label, _ in rows]}, features=features)
    return datasets.DatasetDict(splits)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """``data`` sections of the three layouts, and of ``image_folder`` on the same images."""
    base = tmp_path_factory.mktemp("hf")
    tree = write_tree(base / "tree")
    dataset_dict().save_to_disk(str(base / "saved"))
    (base / "parquet").mkdir()
    for split, data in dataset_dict().items():
        data.to_parquet(str(base / "parquet" / f"{split}.parquet"))
    cache = str(base / "cache")
    return {"image_folder": {"name": "image_folder", "root": str(tree)},
            "saved": {"name": "hf_dataset", "root": str(base / "saved")},
            "imagefolder": {"name": "hf_dataset", "root": str(tree), "cache_dir": cache},
            "parquet": {"name": "hf_dataset", "root": str(base / "parquet"), "cache_dir": cache}}


def items(dataset) -> list:
    return [dataset[i] for i in range(len(dataset))]


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for (x, y), (u, v) in zip(a, b):
        assert torch.equal(x, u) and y == v


@pytest.mark.parametrize("views", [{}, {"on": "device", "load_size": 16}], ids=["cpu", "device"])
@pytest.mark.parametrize("layout", ["saved", "imagefolder", "parquet"])
def test_items_are_image_folder_items(sources: dict, layout: str, views: dict,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[object] = []
    real_open = Image.open
    monkeypatch.setattr(lazy_images.Image, "open",
                        lambda src, *a, **k: opened.append(src) or real_open(src, *a, **k))
    got = splits_from(sources[layout], {**SEED_VIEWS, **views}, seed=3)
    assert opened == []  # nothing is decoded when the source is built
    want = splits_from(sources["image_folder"], {**SEED_VIEWS, **views}, seed=3)
    assert got.num_classes == want.num_classes == 2
    assert got.view_groups == want.view_groups
    for part in ("train", "train_eval", "test"):
        assert_same(items(getattr(got, part)), items(getattr(want, part)))
    if hasattr(got.train, "set_epoch"):  # views made in the workers: the next epoch's too
        got.train.set_epoch(1)
        want.train.set_epoch(1)
        assert_same(items(got.train), items(want.train))


def test_labels_class_names_and_splits(sources: dict, tmp_path: Path) -> None:
    source = DATA.build(sources["saved"], where="data")
    assert source.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert source.test.labels.tolist() == [0, 1]  # test_split auto: validation
    assert source.train.images.class_names == list(CLASSES) == source.test.images.class_names
    assert source.num_classes == 2 and source.on_error == "skip"
    assert DATA.build({**sources["saved"], "test_split": None}).test is None
    swapped = DATA.build({**sources["saved"], "split": "validation", "test_split": "train"})
    assert len(swapped.train.images) == 2 and len(swapped.test.images) == 6
    # integer labels without a ClassLabel: classes up to the largest label, no names
    dataset_dict(label_feature=datasets.Value("int32")).save_to_disk(str(tmp_path / "ints"))
    ints = DATA.build({"name": "hf_dataset", "root": str(tmp_path / "ints")})
    assert ints.num_classes == 2 and ints.train.images.class_names is None
    assert ints.train.labels.dtype == torch.int64


def test_the_images_pickle_without_their_pixels(sources: dict) -> None:
    images = DATA.build(sources["saved"]).train.images
    first = images[0]
    data, _ = images.encoded(0)
    blob = pickle.dumps(images)
    assert data not in blob and len(blob) < 20_000  # the Arrow file's path, not its rows
    copy = pickle.loads(blob)
    assert copy._last is None and np.array_equal(np.asarray(copy[0]), np.asarray(first))


def _corrupt_sources(tmp_path: Path) -> tuple[dict, dict]:
    """``hf_dataset`` and ``image_folder`` sections with the same training image made garbage."""
    dataset_dict(corrupt=True).save_to_disk(str(tmp_path / "saved"))
    tree = write_tree(tmp_path / "tree", corrupt=True)
    return ({"name": "hf_dataset", "root": str(tmp_path / "saved")},
            {"name": "image_folder", "root": str(tree)})


def test_a_corrupt_row_is_skipped_and_counted_like_a_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hf, folder = _corrupt_sources(tmp_path)
    got = splits_from(hf, SEED_VIEWS)
    want = splits_from(folder, SEED_VIEWS)
    assert_same(items(got.train), items(want.train))  # the next readable row, same randomness
    lines = capsys.readouterr().err.splitlines()
    row = f"{tmp_path / 'saved'} split train row {CORRUPT_ROW}"
    assert [line for line in lines if "skipping" in line] == [
        f"levyjepa: skipping unreadable image {row}: not an image file PIL can identify "
        "(UnidentifiedImageError)",
        f"levyjepa: skipping unreadable image {tmp_path / 'tree/train/cat/img_2.png'}: not an "
        "image file PIL can identify (UnidentifiedImageError)"]
    assert got.train.unreadable.tolist() == [0, 0, 1, 0, 0, 0]
    # in a loader worker: the flag is shared, the batch keeps its size
    fresh = splits_from(hf, SEED_VIEWS)
    batches = [views for views, _ in DataLoader(fresh.train, batch_size=3, num_workers=1)]
    assert [len(b) for b in batches] == [3, 3]
    assert skipped_files_metric(fresh.train, device=torch.device("cpu")) == {
        "data/skipped_files": 1.0}


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_row_under_raise_is_one_line(tmp_path: Path, workers: int) -> None:
    hf, _ = _corrupt_sources(tmp_path)
    splits = splits_from({**hf, "on_error": "raise"}, SEED_VIEWS)
    with pytest.raises(UnreadableImage) as caught:
        list(DataLoader(splits.train, batch_size=6, num_workers=workers))
    assert str(caught.value) == (f"{tmp_path / 'saved'} split train row {CORRUPT_ROW}: not an "
                                 "image file PIL can identify (UnidentifiedImageError)")


def test_an_imagefolder_row_names_its_file(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", corrupt=True)
    source = DATA.build({"name": "hf_dataset", "root": str(tree), "on_error": "raise",
                         "cache_dir": str(tmp_path / "cache")})
    with pytest.raises(UnreadableImage) as caught:
        source.train.images[CORRUPT_ROW]
    assert str(caught.value) == (f"{tree} split train row {CORRUPT_ROW} "
                                 f"({tree / 'train/cat/img_2.png'}): not an image file PIL can "
                                 "identify (UnidentifiedImageError)")


@pytest.mark.parametrize("keys, message", [
    ({"image_column": "img"}, "data.image_column: no column 'img' in '{root}' split train; "
                              "columns: image, label"),
    ({"label_column": "y"}, "data.label_column: no column 'y' in '{root}' split train; columns: "
                            "image, label (or null for unlabelled data)"),
    ({"image_column": "label"}, "data.image_column: column 'label' of '{root}' split train "
                                "holds ClassLabel, not images; image columns: image"),
    ({"label_column": "image"}, "data.label_column: column 'image' of '{root}' split train "
                                "holds Image, not class indices; an integer or ClassLabel "
                                "column, or null for unlabelled data"),
    ({"split": "training"}, "data.split: no split 'training' in '{root}'; splits: train, "
                            "validation"),
    ({"test_split": "test"}, "data.test_split: no split 'test' in '{root}'; splits: train, "
                             "validation (or null: no evaluation)"),
    ({"root": "{root}/nowhere"}, "data.root: '{root}/nowhere' does not exist; expected a folder "
                                 "written by save_to_disk, or an imagefolder tree or "
                                 "parquet/arrow files that datasets.load_dataset reads"),
    ({"on_error": "x"}, "data: data source 'hf_dataset': on_error must be one of skip, raise; "
                        "got 'x'"),
])
def test_mistakes_are_one_line_naming_key_value_and_choices(sources: dict, keys: dict,
                                                            message: str) -> None:
    root = sources["saved"]["root"]
    section = {**sources["saved"], **{k: v.format(root=root) for k, v in keys.items()}}
    with pytest.raises(ConfigError) as caught:
        DATA.build(section, where="data")
    assert str(caught.value) == message.format(root=root)


def test_a_folder_datasets_cannot_read_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.weird").write_text("x")
    start = f"^data.root: datasets.load_dataset could not read '{tmp_path / 'notes'}' "
    with pytest.raises(ConfigError, match=start + r"\(.*\); expected a folder written by ") as err:
        DATA.build({"name": "hf_dataset", "root": str(tmp_path / "notes"),
                    "cache_dir": str(tmp_path / "cache")})
    assert "\n" not in str(err.value)


def test_without_the_datasets_package(sources: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    cfg = load_recipe(ROOT / "recipes" / "image_baseline.yaml",
                      ["data.name=hf_dataset", f"data.root={sources['saved']['root']}"])
    from levyjepa.data.build import build_splits

    with pytest.raises(ConfigError) as caught:
        build_splits(cfg)
    assert str(caught.value) == MISSING_PACKAGE == (
        "data.name=hf_dataset needs the datasets package: pip install 'levyjepa[hub]'")


def test_an_unlabelled_single_dataset(tmp_path: Path) -> None:
    rows = pictures()["train"]
    data = datasets.Dataset.from_dict({"image": [image for image, _, _ in rows]},
                                      features=datasets.Features({"image": datasets.Image()}))
    data.save_to_disk(str(tmp_path / "one"))
    section = {"name": "hf_dataset", "root": str(tmp_path / "one")}
    with pytest.raises(ConfigError, match="no column 'label'.*or null for unlabelled data"):
        DATA.build(section)
    with pytest.raises(ConfigError, match="no split 'validation' in .*; splits: train$"):
        DATA.build({**section, "split": "validation", "label_column": None})
    splits = splits_from({**section, "label_column": None}, SEED_VIEWS)
    assert splits.num_classes == 0 and splits.test is None  # no validation split: no evaluation
    assert [label for _, label in items(splits.train)] == [-1] * 6
    # the row's pixels are the picture's
    assert np.array_equal(np.asarray(splits.train.images[4]), np.asarray(rows[4][0]))


def test_two_training_steps_through_the_recipe(sources: dict, tmp_path: Path) -> None:
    # data.name first: a new source name replaces the recipe's data section
    overrides = tiny(tmp_path / "run", "trainer.max_steps=2", "log.every=1",
                     "trainer.cpu_threads=1",
                     data=[f"data.root={sources['saved']['root']}", *TINY_IMAGES])
    cfg = load_recipe(ROOT / "recipes" / "image_baseline.yaml",
                      ["data.name=hf_dataset", *overrides])
    summary = train(cfg)
    assert summary["steps"] == 2
    events = [e for e in read_metrics(tmp_path / "run") if "train/loss" in e]
    assert len(events) == 2 and all(np.isfinite(e["train/loss"]) for e in events)
    assert events[-1]["data/skipped_files"] == 0  # read under the on_error policy
