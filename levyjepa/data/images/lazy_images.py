"""Image collections decoded one item at a time (nothing is decoded when they are built).

Both behave as sequences of RGB PIL images for
:class:`levyjepa.data.views.multi_view.MultiViewDataset` and
:class:`levyjepa.data.views.multi_view.TransformedDataset`. The multi-view dataset reads item ``i``
once per view, so the last decoded image is kept (one per process or loader worker).

An item that does not decode (a corrupt or truncated file, a file removed since it was listed)
raises :class:`UnreadableImage`, naming the file and PIL's error; the datasets then skip it or
stop, as ``data.on_error`` says (:mod:`levyjepa.data.loading.skipped_files`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

from levyjepa.core.errors import UnreadableFile

DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error,
                 Image.DecompressionBombError)
"""What PIL raises for files it cannot decode (``OSError``: unidentified, truncated or missing
files; the others from format plugins on damaged data)."""


class UnreadableImage(UnreadableFile):
    """An image file that does not decode; the message names the file and PIL's error."""


@contextmanager
def decoding(name: str) -> Iterator[None]:
    """Turn a decoding error of the image ``name`` into :class:`UnreadableImage`."""
    try:
        yield
    except DECODE_ERRORS as err:
        if isinstance(err, UnidentifiedImageError):
            cause = "not an image file PIL can identify (UnidentifiedImageError)"
        else:
            first = (str(err).strip().splitlines() or [""])[0][:200]
            cause = f"{type(err).__name__}: {first}"
        raise UnreadableImage(f"{name}: {cause}") from err


def decode_rgb(source: str | IO[bytes], name: str) -> Image.Image:
    """Open and fully decode ``source`` (a path or a binary file) as RGB.

    Raises:
        UnreadableImage: naming ``name`` when the data is not a decodable image.
    """
    with decoding(name), Image.open(source) as image:
        return image.convert("RGB")


class _LastItemCache:
    """Decode ``index`` through ``_load``, remembering the last image."""

    def __init__(self) -> None:
        self._last: tuple[int, Image.Image] | None = None

    def _load(self, index: int) -> Image.Image:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Image.Image:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"image index {index} out of range for {len(self)} images")
        index %= len(self)
        if self._last is None or self._last[0] != index:
            self._last = (index, self._load(index))
        return self._last[1]

    def __len__(self) -> int:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:  # loader workers start without a cached image
        return {**self.__dict__, "_last": None}


class ImageFiles(_LastItemCache):
    """Image files on disk, opened and converted to RGB on access.

    Args:
        paths: One file per item.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        super().__init__()
        self.paths = [os.fspath(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int) -> Image.Image:
        return decode_rgb(self.paths[index], self.paths[index])


class HubImages(_LastItemCache):
    """The image column of a Hugging Face ``datasets.Dataset``, decoded on access.

    Args:
        dataset: A map-style dataset whose rows hold a PIL image under ``column``.
        column: Name of the image column.
        name: The dataset's name in messages (``<name> item <index>``).
    """

    def __init__(self, dataset: Any, *, column: str = "image", name: str = "hub dataset"
                 ) -> None:
        super().__init__()
        self.dataset, self.column, self.name = dataset, column, name

    def __len__(self) -> int:
        return len(self.dataset)

    def _load(self, index: int) -> Image.Image:
        with decoding(f"{self.name} item {index}"):  # rows are decoded when indexed
            return self.dataset[index][self.column].convert("RGB")
