"""``python -m levyjepa.data.shards SRC OUT``: an image or video folder written as tar shards.

A tiny example on a CPU (seconds: 60 generated 64 px JPEGs in class folders of ``train/`` and
``val/``, written as shards of 16 images)::

    python benchmarks/make_images.py /tmp/tree --train 48 --val 12 --size 64 --unique 12
    python -m levyjepa.data.shards /tmp/tree /tmp/tree-shards --shard-size 16

prints ``shards: wrote 48 samples to /tmp/tree-shards/train-{000000..000002}.tar (3 shards)``
and the same for the 12 ``val`` images; ``data.name=image_shards data.root=/tmp/tree-shards``
then reads them.

``SRC`` is one of:

- a tree of splits, ``SRC/train`` (and ``SRC/val``, ``SRC/test`` when present), each an image
  or video folder (an Imagenette copy is one): ``OUT/train-000000.tar, ...`` and
  ``OUT/val-000000.tar, ...``;
- an image or video folder, labelled by its class sub-folders or flat (unlabelled):
  ``OUT/train-000000.tar, ...``.

Files are listed, and labelled, exactly as the folder sources list them
(:func:`levyjepa.data.images.image_folder.scan_split`,
:func:`levyjepa.data.video.video_folder.scan_videos`: classes sorted by name, the training
split's classes fixing the labels of the others), and written in that order, so
``image_shards``/``video_shards`` on ``OUT`` give the items of ``image_folder``/``video_folder``
on ``SRC`` one for one. A sample is the file's bytes as they are (no re-encoding) under its
lower-cased extension, and its label as ``cls`` (labelled folders only); its key is its position
in the split and its file name (``00000017_img_3``). The class names go to ``OUT/classes.json``.
Shards are written with webdataset's ``ShardWriter`` (``--shard-size`` samples each; with
``--max-bytes``, a shard also ends once it holds that many bytes), with a fixed member time, so
the same input gives the same bytes. Everything is written into a temporary folder beside
``OUT`` and renamed to ``OUT`` when complete: an interrupted run leaves no partial ``OUT``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from levyjepa.core.atomic import atomic_write_json, dir_mode, fsync_tree, replace_folder
from levyjepa.core.cli_help import HelpFormatter
from levyjepa.core.errors import ConfigError
from levyjepa.data.images.image_folder import IMAGE_EXTENSIONS, scan_split
from levyjepa.data.shards.tar_index import CLASSES_FILE, webdataset_module
from levyjepa.data.video.video_folder import VIDEO_EXTENSIONS, scan_videos

SPLITS = ("train", "val", "test")
"""Sub-folders of ``SRC`` read as splits (``SRC/train`` makes ``SRC`` a tree of splits)."""

KINDS = ("auto", "images", "video")
"""``--kind``: what ``SRC`` holds (``auto``: whichever of images and videos it has)."""

Listing = tuple[list[Path], list[int], list[str]]
"""Files, their labels (``-1``: unlabelled) and the class names (empty: unlabelled)."""


def sample_key(position: int, path: Path) -> str:
    """``<position>_<stem>``: unique in a split, and free of dots (a key ends at the first)."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", path.name.split(".")[0])[:60]
    return f"{position:08d}_{stem}"


def find_kind(src: Path, kind: str) -> str:
    """``images`` or ``video``: ``kind``, or what ``src`` holds when ``kind`` is ``auto``.

    Raises:
        ConfigError: for an unknown kind, a folder without either, or a folder with both.
    """
    if kind not in KINDS:
        raise ConfigError(f"--kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if kind != "auto":
        return kind
    suffixes = {p.suffix.lower() for p in src.rglob("*") if p.is_file()}
    images = bool(suffixes & set(IMAGE_EXTENSIONS))
    videos = bool(suffixes & set(VIDEO_EXTENSIONS))
    if images and videos:
        raise ConfigError(f"SRC '{src}' holds images and videos: pass --kind images or --kind "
                          "video")
    if not (images or videos):
        raise ConfigError(f"SRC '{src}' holds no images ({', '.join(IMAGE_EXTENSIONS)}) nor "
                          f"videos ({', '.join(VIDEO_EXTENSIONS)})")
    return "images" if images else "video"


def list_images(folder: Path, classes: Optional[list[str]]) -> Listing:
    """An image folder's files: by class sub-folder (as ``image_folder``), or flat."""
    has_classes = any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir())
    if has_classes or classes:
        return scan_split(folder.parent, folder.name, classes or None)
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ConfigError(f"image folder '{folder}' holds no images with extensions "
                          f"{', '.join(IMAGE_EXTENSIONS)}")
    return files, [-1] * len(files), []


def list_splits(src: Path, kind: str) -> dict[str, Listing]:
    """The splits of ``src`` and their files, the first split's classes labelling the others."""
    names = [s for s in SPLITS if (src / s).is_dir()] if (src / "train").is_dir() else []
    folders = {s: src / s for s in names} or {"train": src}
    listed: dict[str, Listing] = {}
    classes: Optional[list[str]] = None
    for split, folder in folders.items():
        if kind == "images":
            listed[split] = list_images(folder, classes)
        else:
            listed[split] = scan_videos(folder, classes)
        if classes is None:
            classes = listed[split][2]
    return listed


def write_split(out: Path, split: str, files: Sequence[Path], labels: Sequence[int], *,
                shard_size: int, max_bytes: Optional[int]) -> int:
    """Write one split as ``out/<split>-NNNNNN.tar``; returns the number of shards."""
    wds_writer = webdataset_module("writer")
    pattern = str(out).replace("%", "%%") + f"/{split}-%06d.tar"  # ShardWriter fills in %06d
    limits = dict(maxcount=shard_size, maxsize=max_bytes if max_bytes else 3e9)
    with wds_writer.ShardWriter(pattern, verbose=0, encoder=False, mtime=0, user="levyjepa",
                                group="levyjepa", **limits) as writer:
        for position, (path, label) in enumerate(zip(files, labels)):
            sample = {"__key__": sample_key(position, path),
                      path.suffix.lower().lstrip("."): path.read_bytes()}
            if label >= 0:
                sample["cls"] = str(int(label)).encode()
            writer.write(sample)
        return int(writer.shard)


def write_shards(src: Path, out: Path, *, shard_size: int, max_bytes: Optional[int] = None,
                 kind: str = "auto", overwrite: bool = False) -> dict[str, tuple[int, int]]:
    """Write ``src`` as shards in ``out`` (see the module docstring).

    Args:
        src: An image or video folder, or a tree of splits of them.
        out: The folder to write (created; replaced only with ``overwrite``).
        shard_size: Samples per shard.
        max_bytes: Also end a shard once it holds this many bytes (``None``: no limit).
        kind: ``auto``, ``images`` or ``video``.
        overwrite: Replace an existing ``out``.

    Returns:
        ``{split: (samples, shards)}``.

    Raises:
        ConfigError: one line naming the argument or path at fault.
    """
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ConfigError(f"--shard-size must be a positive integer, got {shard_size!r}")
    if max_bytes is not None and max_bytes < 1:
        raise ConfigError(f"--max-bytes must be a positive number of bytes, got {max_bytes!r}")
    if not src.is_dir():
        raise ConfigError(f"SRC '{src}' is not a folder; give an image or video folder (class "
                          "sub-folders or flat) or a tree with train/ and val/ splits")
    if out.exists() and not overwrite:
        raise ConfigError(f"OUT '{out}' exists; pass --overwrite to replace it, or name a new "
                          "folder")
    if out.resolve().is_relative_to(src.resolve()):
        raise ConfigError(f"OUT '{out}' is inside SRC '{src}'; write the shards elsewhere")
    kind = find_kind(src, kind)
    listed = list_splits(src, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        written = {split: (len(files), write_split(staged, split, files, labels,
                                                   shard_size=shard_size, max_bytes=max_bytes))
                   for split, (files, labels, _) in listed.items()}
        classes = next(iter(listed.values()))[2]
        atomic_write_json(staged / CLASSES_FILE, {"classes": classes, "kind": kind})
        fsync_tree(staged)
        staged.chmod(dir_mode())  # mkdtemp made it 0700
        replace_folder(staged, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write shards; returns the exit status (2 with one line for bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m levyjepa.data.shards", formatter_class=HelpFormatter,
        description="Write an image or video folder (class sub-folders or flat), or a tree of "
                    "train/ val/ test/ splits of them, as tar shards in the WebDataset layout, "
                    "read by data.name=image_shards or video_shards.")
    parser.add_argument("src", type=Path, help="the folder to write")
    parser.add_argument("out", type=Path, help="the shards' folder (must not exist)")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    parser.add_argument("--max-bytes", type=int, default=None,
                        help="also end a shard once it holds this many bytes")
    parser.add_argument("--kind", choices=KINDS, default="auto",
                        help="what SRC holds (auto: images or videos, whichever it has)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    args = parser.parse_args(argv)
    try:
        written = write_shards(args.src, args.out, shard_size=args.shard_size,
                               max_bytes=args.max_bytes, kind=args.kind,
                               overwrite=args.overwrite)
    except ConfigError as err:  # the folder listings' messages name a recipe key: not here
        print(f"levyjepa: error: {str(err).removeprefix('data.root: ')}", file=sys.stderr)
        return 2
    for split, (samples, shards) in written.items():
        last = f"{shards - 1:06d}"
        pattern = f"{split}-{{000000..{last}}}.tar" if shards > 1 else f"{split}-000000.tar"
        print(f"shards: wrote {samples} samples to {args.out / pattern} ({shards} shard"
              f"{'s' if shards > 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
