"""Image collections decoded one item at a time (nothing is decoded when they are built).

Both behave as sequences of RGB PIL images for :class:`levyjepa.data.views.MultiViewDataset`
and :class:`levyjepa.data.views.TransformedDataset`. The multi-view dataset reads item ``i``
once per view, so the last decoded image is kept (one per process or loader worker).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from PIL import Image


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
        with Image.open(self.paths[index]) as image:
            return image.convert("RGB")


class HubImages(_LastItemCache):
    """The image column of a Hugging Face ``datasets.Dataset``, decoded on access.

    Args:
        dataset: A map-style dataset whose rows hold a PIL image under ``column``.
        column: Name of the image column.
    """

    def __init__(self, dataset: Any, *, column: str = "image") -> None:
        super().__init__()
        self.dataset, self.column = dataset, column

    def __len__(self) -> int:
        return len(self.dataset)

    def _load(self, index: int) -> Image.Image:
        return self.dataset[index][self.column].convert("RGB")
