"""Data sources: registered factories returning :class:`DataSplits`.

A data source is registered in :data:`levyjepa.DATA`; the recipe's ``data`` section gives its
``name`` and keyword arguments, plus the loader keys ``batch_size`` (global, in samples) and
``workers``.
"""

from levyjepa.data import (  # noqa: F401  (importing registers the sources)
    image_folder,
    imagenette,
    scene_images,
    scene_video,
    synthetic_shapes,
    synthetic_video,
    video_folder,
)
from levyjepa.data.splits import DataSplits

__all__ = ["DataSplits"]
