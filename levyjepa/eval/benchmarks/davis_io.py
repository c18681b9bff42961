"""DAVIS 2017 on disk: the tree's layout, palette annotations, written masks and overlays.

The layout is the one of the DAVIS 2017 release (Pont-Tuset et al., "The 2017 DAVIS Challenge
on Video Object Segmentation", arXiv 1704.00675) as the official evaluation tool
(``davisvideochallenge/davis2017-evaluation``, ``davis2017/davis.py``) reads it::

    ROOT/JPEGImages/480p/<seq>/00000.jpg ...
    ROOT/Annotations/480p/<seq>/00000.png ...   (palette "P" PNGs: 0 background, ids, 255 void)
    ROOT/ImageSets/2017/<split>.txt             (one sequence name per line)

Frames and annotations are taken in sorted file-name order, as the official tool does.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from levyjepa.core.atomic import atomic_write_bytes
from levyjepa.core.errors import ConfigError

LAYOUT = ("expected ROOT/JPEGImages/480p/<seq>/*.jpg, ROOT/Annotations/480p/<seq>/*.png (palette "
          "PNGs) and ROOT/ImageSets/2017/<split>.txt")
VOID = 255


def split_sequences(root: Path, split: str) -> list[str]:
    """The sequence names listed in ``ROOT/ImageSets/2017/<split>.txt``, in file order.

    Raises:
        ConfigError: The list is missing or empty.
    """
    path = Path(root) / "ImageSets" / "2017" / f"{split}.txt"
    if not path.is_file():
        raise ConfigError(f"DAVIS: missing {path}; {LAYOUT}")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ConfigError(f"DAVIS: {path} lists no sequence; {LAYOUT}")
    return names


def _sequence_files(root: Path, seq: str, *, folder: str, suffix: str, what: str) -> list[Path]:
    """Sorted ``<folder>/480p/<seq>/*<suffix>`` of a sequence (at least one)."""
    where = Path(root) / folder / "480p" / seq
    paths = sorted(where.glob(f"*{suffix}"))
    if not paths:
        raise ConfigError(f"DAVIS: missing {where}/00000{suffix} (no {what} of sequence "
                          f"{seq!r}); {LAYOUT}")
    return paths


def frame_paths(root: Path, seq: str) -> list[Path]:
    """Sorted ``JPEGImages/480p/<seq>/*.jpg`` of a sequence (at least one)."""
    return _sequence_files(root, seq, folder="JPEGImages", suffix=".jpg", what="frame")


def annotation_paths(root: Path, seq: str) -> list[Path]:
    """Sorted ``Annotations/480p/<seq>/*.png`` of a sequence (at least one)."""
    return _sequence_files(root, seq, folder="Annotations", suffix=".png", what="annotation")


def read_annotation(path: Path) -> tuple[np.ndarray, list[int]]:
    """One palette annotation.

    Returns:
        ``(mask, palette)``: uint8 ``(H, W)`` ids (0 background, 255 void) and the PNG's
        palette (768 ints, RGB of index 0, 1, ...).

    Raises:
        ConfigError: The file is missing, unreadable or not a palette ("P") PNG.
    """
    if not Path(path).is_file():
        raise ConfigError(f"DAVIS: missing {path}; {LAYOUT}")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode != "P":
                raise ConfigError(f"DAVIS: {path} is a {img.mode!r} image, not a palette ('P') "
                                  f"PNG; {LAYOUT}")
            palette = list(img.getpalette() or [])
            mask = np.array(img, dtype=np.uint8)
    except (OSError, SyntaxError) as err:
        raise ConfigError(f"DAVIS: cannot read {path} ({err}); {LAYOUT}") from None
    return mask, palette + [0] * (768 - len(palette))


def read_frame(path: Path) -> np.ndarray:
    """One JPEG frame as uint8 ``(H, W, 3)`` RGB."""
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError) as err:
        raise ConfigError(f"DAVIS: cannot read frame {path} ({err}); {LAYOUT}") from None


def write_palette_png(path: Path, mask: np.ndarray, palette: list[int]) -> None:
    """Write a uint8 ``(H, W)`` id map as a palette PNG, atomically.

    Args:
        path: Target file (its folder is created).
        mask: uint8 ``(H, W)`` ids.
        palette: 768 ints, the palette to store (the input annotations' one).
    """
    img = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def overlay(frame: np.ndarray, mask: np.ndarray, palette: list[int],
            alpha: float = 0.5) -> np.ndarray:
    """A frame with its id map blended in the palette's colours (background left as is).

    Args:
        frame: uint8 ``(H, W, 3)`` RGB frame.
        mask: uint8 ``(H, W)`` ids of the same size.
        palette: 768 ints.
        alpha: Weight of the colour on object pixels.

    Returns:
        uint8 ``(H, W, 3)`` picture.
    """
    colours = np.asarray(palette[:768], dtype=np.float32).reshape(256, 3)
    out = frame.astype(np.float32)
    obj = (mask > 0)[..., None]
    blended = (1 - alpha) * out + alpha * colours[mask]
    return np.where(obj, blended, out).round().clip(0, 255).astype(np.uint8)


def write_picture(path: Path, picture: np.ndarray) -> None:
    """Write a uint8 ``(H, W, 3)`` picture as an RGB PNG, atomically."""
    buf = io.BytesIO()
    Image.fromarray(picture, mode="RGB").save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
