"""``image_folder``: a local class-per-folder image tree, ``root/<split>/<class>/<image>``.

Classes are the sub-folders of the training split, sorted by name (label ``k`` is the ``k``-th),
each holding at least one image; the test split must use the same class names (it may lack some).
Files are listed when the source is built and decoded one at a time when an item is read. A file
that does not decode (corrupt, truncated) is, with ``on_error: skip``, reported on stderr in one
line naming it, counted in ``data/skipped_files`` and replaced by the next readable image; with
``on_error: raise`` the run stops with one line naming it
(:mod:`levyjepa.data.loading.skipped_files`). a local Imagenette 160 px copy (Imagenette, ``train/``
and ``val/``) has this layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA
from levyjepa.data.images.encoded_images import EncodedImages
from levyjepa.data.images.lazy_images import ImageFiles
from levyjepa.data.loading.image_source import ImageSource, labelled
from levyjepa.data.loading.skipped_files import check_on_error

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""File name endings read as images (any case)."""


def scan_split(root: Path, split: str, classes: Optional[list[str]] = None
               ) -> tuple[list[Path], list[int], list[str]]:
    """List the images of ``root/split`` and their labels.

    Args:
        root: The tree's root folder.
        split: Sub-folder of the split (``train``, ``val``, ...).
        classes: Class names fixing the labels (those of the training split); ``None`` takes the
            split's own sub-folders, sorted.

    Returns:
        Image paths, their labels and the class names.

    Raises:
        ConfigError: naming the missing folder, the empty class list or an unknown class.
    """
    folder = root / split
    if not folder.is_dir():
        raise ConfigError(f"data.root: image folder '{folder}' does not exist (expected "
                          f"{root}/{split}/<class>/<image>)")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise ConfigError(f"data.root: image folder '{folder}' has no class sub-folders (expected "
                          f"{folder}/<class>/<image>)")
    own_classes = classes is None
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ConfigError(f"data.root: image folder '{folder}': class folder '{unknown[0]}' is "
                          "not a class of the training split")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        if name not in found:
            continue
        files = sorted(p for p in (folder / name).iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if own_classes and not files and len(found) > 1:  # a class without training images
            raise ConfigError(f"data.root: class folder '{folder / name}' holds no images with "
                              f"extensions {', '.join(IMAGE_EXTENSIONS)}")
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise ConfigError(f"data.root: image folder '{folder}' holds no images with extensions "
                          f"{', '.join(IMAGE_EXTENSIONS)}")
    return paths, labels, classes


@DATA.register("image_folder")
def image_folder(
    *,
    root: str,
    train_split: str = "train",
    test_split: Optional[str] = "val",
    cache: bool = False,
    on_error: str = "skip",
) -> ImageSource:
    """Natural images from a local class-per-folder tree (their views: the ``views`` section).

    Args:
        root: Root folder of the tree.
        train_split: Sub-folder of the training split.
        test_split: Sub-folder of the test split (``None``: no evaluation).
        cache: Hold every file's encoded bytes in memory (read once, decoded on access).
        on_error: ``skip`` (report, count in ``data/skipped_files``, read the next image) or
            ``raise`` (stop with one line naming the file) for images that do not decode, in
            every split.

    Returns:
        The images, decoded one at a time when read, and their labels.
    """
    check_on_error(on_error)
    base = Path(root).expanduser()
    if not base.is_dir():
        raise ConfigError(f"data.root: image folder '{base}' does not exist")
    images = EncodedImages if cache else ImageFiles
    paths, labels, classes = scan_split(base, train_split)
    test = None
    if test_split is not None:
        test_paths, test_labels, _ = scan_split(base, test_split, classes)
        test = labelled(images(test_paths), test_labels)
    return ImageSource(train=labelled(images(paths), labels), test=test,
                       num_classes=len(classes), on_error=on_error)
