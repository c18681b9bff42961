"""``cifar``: CIFAR-10 and CIFAR-100 read from torchvision's files on disk, never downloaded.

A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", technical report, 2009.
``root`` is the folder torchvision's ``CIFAR10(root, download=True)`` or
``CIFAR100(root, download=True)`` writes into (the dataset's own folder inside it is accepted
too):

- ``variant: cifar10``: ``root/cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (training,
  50,000 images) and ``test_batch`` (10,000), 10 classes;
- ``variant: cifar100``: ``root/cifar-100-python/train`` (50,000) and ``test`` (10,000), with
  ``labels: fine`` (100 classes, ``fine_labels``) or ``labels: coarse`` (the 20 superclasses,
  ``coarse_labels``).

Each file is a pickled dict whose ``data`` is a ``(n, 3072)`` uint8 array, each row an image's
red, green then blue planes of 32 x 32 pixels in row-major order (torchvision reshapes it to
``(n, 3, 32, 32)`` and transposes to height x width x channel), and whose labels are lists of
``n`` ints. The images are held in memory as one uint8 tensor ``(n, 3, 32, 32)`` (150 MB for
50,000 images), so views are made in the loader (``views.on: cpu``). A missing file is one line
naming the path and how to get it. The files are pickles: read only copies you downloaded
yourself.

A class-per-folder copy (``train/<class>/*.png`` and ``test/<class>/*.png``) is read by the
``image_folder`` source instead (``data.test_split=test``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA
from levyjepa.data.loading.image_source import ImageSource, LabelledImages, labelled

SIDE = 32
"""Side of a CIFAR image in pixels."""

VARIANTS: dict[str, dict[str, Any]] = {
    "cifar10": {"folder": "cifar-10-batches-py", "getter": "CIFAR10", "classes": {"fine": 10},
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "keys": {"fine": "labels"}},
    "cifar100": {"folder": "cifar-100-python", "getter": "CIFAR100",
                 "classes": {"fine": 100, "coarse": 20}, "train": ["train"], "test": ["test"],
                 "keys": {"fine": "fine_labels", "coarse": "coarse_labels"}},
}
"""Per variant: its folder, torchvision's class, class counts, files and label keys."""

def pixels_to_images(data: np.ndarray) -> torch.Tensor:
    """``(n, 3072)`` uint8 rows (red, green, blue planes, row-major) to ``(n, 3, 32, 32)``."""
    return torch.from_numpy(np.ascontiguousarray(data.reshape(-1, 3, SIDE, SIDE)))


def read_batch(path: Path, label_key: str) -> tuple[torch.Tensor, list[int]]:
    """Images ``(n, 3, 32, 32)`` uint8 and labels of one pickled CIFAR file.

    Raises:
        ConfigError: naming the file when it lacks ``data`` or the labels, or they disagree.
    """
    with path.open("rb") as f:
        entry = pickle.load(f, encoding="latin1")  # noqa: S301  (torchvision's own format)
    # written by Python 2, the keys are str; by Python 3 with bytes keys, bytes
    entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
    if "data" not in entry or label_key not in entry:
        raise ConfigError(f"data.root: CIFAR file '{path}' has no 'data' and '{label_key}' "
                          "entries")
    data = np.asarray(entry["data"])
    labels = [int(y) for y in entry[label_key]]
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise ConfigError(f"data.root: CIFAR file '{path}': data must be uint8 (n, 3072), got "
                          f"{data.dtype} {tuple(data.shape)}")
    if len(labels) != data.shape[0]:
        raise ConfigError(f"data.root: CIFAR file '{path}' has {data.shape[0]} images but "
                          f"{len(labels)} labels")
    return pixels_to_images(data), labels


def read_split(folder: Path, files: list[str], label_key: str) -> LabelledImages:
    """The images and labels of ``files`` in ``folder``, concatenated in order."""
    parts = [read_batch(folder / name, label_key) for name in files]
    images = torch.cat([images for images, _ in parts])
    return labelled(images, [y for _, labels in parts for y in labels])


def dataset_folder(root: Path, variant: str) -> Path:
    """``root/<folder>`` (or ``root`` itself when it is that folder), every file checked.

    Raises:
        ConfigError: one line naming the first missing file and how to get the files.
    """
    spec = VARIANTS[variant]
    folder = root if root.name == spec["folder"] else root / spec["folder"]
    for name in [*spec["train"], *spec["test"]]:
        if not (folder / name).is_file():
            raise ConfigError(
                f"data.root: CIFAR file '{folder / name}' not found; on a machine with network "
                f"run torchvision.datasets.{spec['getter']}(root, download=True) and set "
                f"data.root to that root (it holds {spec['folder']}/)")
    return folder


@DATA.register("cifar")
def cifar(*, root: str, variant: str = "cifar100", labels: str = "fine") -> ImageSource:
    """CIFAR-10 or CIFAR-100 from torchvision's files (views: the ``views`` section).

    Args:
        root: The folder torchvision downloads into (holding ``cifar-10-batches-py/`` or
            ``cifar-100-python/``), or that dataset folder itself.
        variant: ``cifar10`` or ``cifar100``.
        labels: ``fine`` (CIFAR-100's 100 classes; CIFAR-10's 10) or ``coarse`` (CIFAR-100's 20
            superclasses).

    Returns:
        The training (50,000) and test (10,000) images as uint8 tensors ``(n, 3, 32, 32)``
        with their labels; ``image_size`` 32.

    Raises:
        ConfigError: one line naming a bad ``variant`` or ``labels``, or a missing or malformed
            file.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"data.variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    spec = VARIANTS[variant]
    if labels not in spec["keys"]:
        raise ConfigError(f"data.labels must be one of {', '.join(spec['keys'])} for {variant}, "
                          f"got {labels!r}")
    folder = dataset_folder(Path(root).expanduser(), variant)
    key = spec["keys"][labels]
    return ImageSource(train=read_split(folder, spec["train"], key),
                       test=read_split(folder, spec["test"], key),
                       num_classes=spec["classes"][labels], image_size=SIDE)
