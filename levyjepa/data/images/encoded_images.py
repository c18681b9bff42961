"""An in-memory cache of encoded image files (``data.cache: true``), decoded on access.

The files' bytes (JPEG, PNG, ...) are read once, when the data source is built, into one NumPy
byte buffer with an offset table, so that loader workers share it without copying (no Python
object per image whose reference count would dirty the forked pages). Imagenette at 160 px is
about 120 MB encoded; decoding from memory saves the file system round trip of every item. The
paths are kept (in one NumPy string array) to name a file that does not decode
(:class:`levyjepa.data.images.lazy_images.UnreadableImage`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from levyjepa.data.images.lazy_images import _LastItemCache, decode_rgb


class EncodedImages(_LastItemCache):
    """Images held as their encoded bytes in memory, opened and converted to RGB on access.

    Args:
        paths: One file per item; every file is read now.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        super().__init__()
        self.paths = np.array([os.fspath(p) for p in paths], dtype=str)
        chunks = []
        for path in paths:
            with open(path, "rb") as f:
                chunks.append(np.frombuffer(f.read(), dtype=np.uint8))
        sizes = np.array([len(c) for c in chunks], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.buffer = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint8)

    @property
    def nbytes(self) -> int:
        """Total size of the cached bytes."""
        return int(self.buffer.nbytes)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def encoded(self, index: int) -> bytes:
        """The encoded bytes of item ``index``."""
        return self.buffer[self.offsets[index]:self.offsets[index + 1]].tobytes()

    def _load(self, index: int) -> Image.Image:
        return decode_rgb(io.BytesIO(self.encoded(index)), str(self.paths[index]))
