"""Tar shards (the WebDataset layout): reading them by offset, and the command that writes them.

- :mod:`~levyjepa.data.shards.tar_index`: which shards a recipe names, the index of their
  samples (member offsets read from the tar headers) and reading an item's bytes;
- :mod:`~levyjepa.data.shards.writer`: ``python -m levyjepa.data.shards SRC OUT``, an image or
  video folder (or a tree of splits) written as shards.

The sources reading them are :mod:`levyjepa.data.images.image_shards` (``image_shards``) and
:mod:`levyjepa.data.video.video_shards` (``video_shards``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m levyjepa.data.shards``: see :func:`levyjepa.data.shards.writer.main`."""
    from levyjepa.data.shards.writer import main as write_main

    return write_main(argv)
