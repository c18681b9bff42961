"""``hf_dataset``: a Hugging Face dataset on local disk, its images and labels found by column name.

``data.root`` is either

- a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` (it holds
  ``state.json`` or ``dataset_dict.json``), opened with ``datasets.load_from_disk``; or
- a local folder that ``datasets.load_dataset`` reads without a network: an ``imagefolder`` tree
  (``train/<class>/<image>``, ``validation/`` or ``val/``, ``test/``) or parquet or arrow files
  (one file or folder per split). ``datasets`` writes its Arrow cache of such a folder once, under
  ``data.cache_dir`` (its own default cache when null).

Nothing is downloaded: a ``root`` that is not an existing folder is refused before ``datasets`` is
asked. ``datasets`` (the ``hub`` extra) is imported only when the source is built.

The Arrow tables stay memory-mapped: the source reads the label column once (a NumPy array) and
no image. The image column is cast to ``datasets.Image(decode=False)``, so a row yields the
image's encoded bytes (or the path of its file), which a loader worker decodes with the decoder of
the folder sources (:func:`levyjepa.data.images.lazy_images.decode_rgb`). A row whose image does
not decode raises :class:`~levyjepa.data.images.lazy_images.UnreadableImage` naming the dataset
row, and is skipped and counted or stops the run as ``data.on_error`` says
(:mod:`levyjepa.data.loading.skipped_files`). A memory-mapped dataset pickles as its file paths,
so loader workers started by ``spawn`` receive it without copying the data.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import numpy as np
from PIL import Image

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA
from levyjepa.data.images.lazy_images import UnreadableImage, _LastItemCache, decode_rgb
from levyjepa.data.loading.image_source import ImageSource, labelled
from levyjepa.data.loading.skipped_files import check_on_error

AUTO = "auto"
"""``data.test_split`` default: the first of :data:`TEST_SPLITS` present, else no test split."""

TEST_SPLITS = ("validation", "val", "test")
"""Splits tried, in order, by ``test_split: auto``. ``validation`` comes first: datasets with all
three (ImageNet-1k on the hub) often ship an unlabelled ``test`` split."""

SAVED_MARKERS = ("dataset_dict.json", "state.json")
"""Files that ``DatasetDict.save_to_disk`` and ``Dataset.save_to_disk`` write at the root."""

LAYOUTS = ("a folder written by save_to_disk, or an imagefolder tree or parquet/arrow files "
           "that datasets.load_dataset reads")
"""What ``data.root`` may be, in messages."""

MISSING_PACKAGE = "data.name=hf_dataset needs the datasets package: pip install 'levyjepa[hub]'"


def import_datasets() -> ModuleType:
    """The ``datasets`` package, imported now.

    Raises:
        ConfigError: :data:`MISSING_PACKAGE` when it is not installed.
    """
    try:
        import datasets
    except ImportError:
        raise ConfigError(MISSING_PACKAGE) from None
    return datasets


def load_splits(base: Path, *, cache_dir: Optional[str] = None) -> dict[str, Any]:
    """Open every split of the dataset at ``base`` (memory-mapped; nothing is decoded).

    A single saved ``Dataset`` is one split, named by its ``split`` attribute (``train`` when
    it has none).

    Args:
        base: An existing folder (see the module docstring for its layouts).
        cache_dir: Where ``load_dataset`` writes the Arrow cache of a plain folder.

    Returns:
        ``{split name: datasets.Dataset}``.

    Raises:
        ConfigError: when ``datasets`` is missing or cannot read the folder.
    """
    datasets = import_datasets()
    saved = any((base / marker).is_file() for marker in SAVED_MARKERS)
    try:
        if saved:
            loaded = datasets.load_from_disk(str(base))
        else:  # a local folder: load_dataset picks its builder (imagefolder, parquet, arrow)
            loaded = datasets.load_dataset(str(base), cache_dir=cache_dir)
    except Exception as err:  # datasets raises many types for folders it cannot read
        first = (str(err).strip().splitlines() or [""])[0][:300]
        how = "load_from_disk" if saved else "load_dataset"
        raise ConfigError(f"data.root: datasets.{how} could not read '{base}' "
                          f"({type(err).__name__}: {first}); expected {LAYOUTS}") from err
    if isinstance(loaded, datasets.Dataset):
        return {str(loaded.split) if loaded.split else "train": loaded}
    return dict(loaded)


def pick_split(splits: dict[str, Any], key: str, name: str, base: Path) -> Any:
    """``splits[name]``, or one line naming ``data.<key>``, the value and the splits there."""
    if name not in splits:
        extra = " (or null: no evaluation)" if key == "test_split" else ""
        raise ConfigError(f"data.{key}: no split '{name}' in '{base}'; splits: "
                          f"{', '.join(splits)}{extra}")
    if not len(splits[name]):
        raise ConfigError(f"data.{key}: split '{name}' of '{base}' has no rows")
    return splits[name]


def _column(dataset: Any, key: str, column: str, where: str, extra: str = "") -> Any:
    """The feature of ``column``, or one line naming ``data.<key>`` and the columns there."""
    if column not in dataset.features:
        raise ConfigError(f"data.{key}: no column '{column}' in {where}; columns: "
                          f"{', '.join(dataset.column_names)}{extra}")
    return dataset.features[column]


def _describe(feature: Any) -> str:
    """A feature as messages name it (``string values``, ``Sequence``)."""
    dtype = getattr(feature, "dtype", None)
    return f"{dtype} values" if type(feature).__name__ == "Value" else type(feature).__name__


def image_rows(dataset: Any, column: str, where: str) -> Any:
    """``dataset`` reduced to its image column, undecoded (rows give bytes or a path).

    Accepts an ``Image`` feature (cast to ``decode=False``), a binary column of encoded files,
    or a ``{bytes, path}`` struct.

    Raises:
        ConfigError: naming ``data.image_column`` when the column is missing or holds no images.
    """
    datasets = import_datasets()
    feature = _column(dataset, "image_column", column, where)
    if isinstance(feature, datasets.Image):
        return dataset.select_columns([column]).cast_column(column, datasets.Image(decode=False))
    binary = getattr(feature, "dtype", None) in ("binary", "large_binary")
    if binary or (isinstance(feature, dict) and "bytes" in feature):
        return dataset.select_columns([column])
    images = [c for c, f in dataset.features.items() if isinstance(f, datasets.Image)]
    raise ConfigError(f"data.image_column: column '{column}' of {where} holds "
                      f"{_describe(feature)}, not images; image columns: "
                      f"{', '.join(images) or 'none'}")


def read_labels(dataset: Any, column: Optional[str], where: str
                ) -> tuple[np.ndarray, Optional[list[str]]]:
    """The label column as int64 (``-1`` throughout when ``column`` is ``None``) and the class
    names of its ``ClassLabel`` feature (``None`` without one).

    Raises:
        ConfigError: naming ``data.label_column`` when the column is missing or not integer.
    """
    if column is None:
        return np.full(len(dataset), -1, dtype=np.int64), None
    datasets = import_datasets()
    feature = _column(dataset, "label_column", column, where, " (or null for unlabelled data)")
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    dtype = getattr(feature, "dtype", None)
    if names is None and not (type(feature).__name__ == "Value" and str(dtype).startswith(
            ("int", "uint"))):
        raise ConfigError(f"data.label_column: column '{column}' of {where} holds "
                          f"{_describe(feature)}, not class indices; an integer or ClassLabel "
                          "column, or null for unlabelled data")
    # the Arrow column itself (the "numpy" format would import torchvision's video reader)
    values = dataset.select_columns([column]).with_format("arrow")[column]
    values = values.fill_null(-1)  # a missing label: unlabelled, as ClassLabel's -1
    return np.array(values.to_numpy(), dtype=np.int64), names  # a writable copy


class ArrowImages(_LastItemCache):
    """The image column of a memory-mapped ``datasets.Dataset``, decoded on access.

    Args:
        rows: The dataset reduced to ``column``, undecoded (:func:`image_rows`).
        column: The image column.
        name: How messages name the split (``'<root>' split <split>``); a row is
            ``<name> row <index>``, with its file when the row holds a path.
        class_names: The class names of the split's labels (``None``: integer labels or none).
    """

    def __init__(self, rows: Any, *, column: str, name: str,
                 class_names: Optional[list[str]] = None) -> None:
        super().__init__()
        self.rows, self.column, self.name, self.class_names = rows, column, name, class_names

    def __len__(self) -> int:
        return len(self.rows)

    def encoded(self, index: int) -> tuple[Optional[bytes], Optional[str]]:
        """The encoded bytes of row ``index`` and its file path (either may be ``None``)."""
        value = self.rows[index][self.column]
        if isinstance(value, dict):
            return value.get("bytes"), value.get("path")
        return value, None

    def _load(self, index: int) -> Image.Image:
        data, path = self.encoded(index)
        where = f"{self.name} row {index}" + (f" ({path})" if path else "")
        if data is not None:
            return decode_rgb(io.BytesIO(data), where)
        if path:  # imagefolder and path-only rows: the file itself
            return decode_rgb(path, where)
        raise UnreadableImage(f"{where}: the row holds no image (no bytes, no path)")


def _checked_test_labels(labels: np.ndarray, names: Optional[list[str]],
                         train_names: Optional[list[str]], num_classes: int, split: str) -> None:
    """Refuse a test split whose class names or labels do not match the training split's."""
    if names is not None and train_names is not None and names != train_names:
        differ = next((k for k, (a, b) in enumerate(zip(names, train_names)) if a != b),
                      min(len(names), len(train_names)))
        raise ConfigError(f"data.test_split: the class names of split '{split}' differ from the "
                          f"training split's from label {differ} ({names[differ:differ + 1]} vs "
                          f"{train_names[differ:differ + 1]})")
    if len(labels) and labels.max() >= num_classes:
        raise ConfigError(f"data.test_split: split '{split}' has label {int(labels.max())} but "
                          f"the training split has {num_classes} classes")


@DATA.register("hf_dataset")
def hf_dataset(
    *,
    root: str,
    split: str = "train",
    test_split: Optional[str] = AUTO,
    image_column: str = "image",
    label_column: Optional[str] = "label",
    cache_dir: Optional[str] = None,
    on_error: str = "skip",
) -> ImageSource:
    """A Hugging Face dataset on local disk (its views: the ``views`` section).

    Args:
        root: A folder written by ``save_to_disk``, or a local folder ``datasets.load_dataset``
            reads (an ``imagefolder`` tree, parquet or arrow files).
        split: The training split.
        test_split: The test split; ``auto``: ``validation``, ``val`` or ``test``, the first
            present (none: no evaluation); ``None``: no evaluation.
        image_column: The column of images (an ``Image`` feature, or encoded bytes).
        label_column: The column of class indices (a ``ClassLabel`` names the classes);
            ``None``: unlabelled (labels ``-1``, no probe).
        cache_dir: Where ``load_dataset`` caches a plain folder as Arrow files (``None``: the
            ``datasets`` default, ``~/.cache/huggingface/datasets``); unused for ``save_to_disk``
            folders, which are read in place.
        on_error: ``skip`` (report, count in ``data/skipped_files``, read the next image) or
            ``raise`` (stop with one line naming the row) for images that do not decode.

    Returns:
        The images, decoded one at a time when read, and their labels; ``images.class_names``
        holds the ``ClassLabel`` names.
    """
    check_on_error(on_error)
    base = Path(root).expanduser()
    if not base.is_dir():
        what = "is not a folder" if base.exists() else "does not exist"
        raise ConfigError(f"data.root: '{base}' {what}; expected {LAYOUTS}")
    splits = load_splits(base, cache_dir=cache_dir)
    train = pick_split(splits, "split", split, base)
    where = f"'{base}' split {split}"
    labels, names = read_labels(train, label_column, where)
    num_classes = len(names) if names is not None else int(max(labels.max(initial=-1) + 1, 0))
    images = ArrowImages(image_rows(train, image_column, where), column=image_column,
                         name=f"{base} split {split}", class_names=names)
    if test_split == AUTO:
        test_split = next((s for s in TEST_SPLITS if s in splits and s != split), None)
    test = None
    if test_split is not None:
        test_where = f"'{base}' split {test_split}"
        test_data = pick_split(splits, "test_split", test_split, base)
        test_labels, test_names = read_labels(test_data, label_column, test_where)
        _checked_test_labels(test_labels, test_names, names, num_classes, test_split)
        test = labelled(ArrowImages(image_rows(test_data, image_column, test_where),
                                    column=image_column, name=f"{base} split {test_split}",
                                    class_names=test_names or names), test_labels)
    return ImageSource(train=labelled(images, labels), test=test, num_classes=num_classes,
                       on_error=on_error)
