"""Shared fixtures: a small generated class-per-folder image tree (no real data needed)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Hugging Face datasets (the hf_dataset source's tests): never the network, never ~/.cache
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="levyjepa-hf-cache-"))


def make_image_tree(root: Path, *, classes: int = 2, train: int = 4, val: int = 2,
                    size: int = 32) -> Path:
    """Write ``root/{train,val}/class_k/*.png`` (and one ``.JPEG`` per class): random images.

    Class ``k`` images are tinted towards a class colour, so the classes differ.

    Args:
        root: Folder to create.
        classes: Number of class folders.
        train: Training images per class.
        val: Validation images per class.
        size: Image side in pixels.
    """
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for k in range(classes):
            folder = root / split / f"class_{k}"
            folder.mkdir(parents=True, exist_ok=True)
            tint = np.array([255 * (k % 2), 255 * ((k // 2) % 2), 128], dtype=np.float64)
            for i in range(count):
                noise = rng.uniform(0, 255, size=(size, size, 3))
                pixels = (0.5 * noise + 0.5 * tint).astype(np.uint8)
                suffix = ".JPEG" if i == count - 1 else ".png"
                Image.fromarray(pixels).save(folder / f"img_{i}{suffix}")
    return root


@pytest.fixture(scope="session")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-class tree of 32 px images: 4 training and 2 validation images per class."""
    return make_image_tree(tmp_path_factory.mktemp("images") / "tree")


@pytest.fixture
def fresh_image_tree(tmp_path: Path) -> Path:
    """Like ``image_tree``, but private to one test (which may modify it)."""
    return make_image_tree(tmp_path / "tree")


@pytest.fixture(scope="session")
def video_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated clips written to H.264 ``.mp4``: ``train/`` 6 and ``val/`` 2 videos of 12 frames
    at 32 px, in 2 class sub-folders (moving disks and squares)."""
    from levyjepa.data.generated.synthetic_video import write_synthetic_videos

    root = tmp_path_factory.mktemp("videos")
    write_synthetic_videos(root / "train", 6, classes=2, size=32, frames=12)
    write_synthetic_videos(root / "val", 2, start=100, classes=2, size=32, frames=12)
    return root
