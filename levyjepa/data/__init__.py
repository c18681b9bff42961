"""Data sources: registered factories returning :class:`DataSplits`.

A data source is registered in :data:`levyjepa.DATA`; the recipe's ``data`` section gives its
``name`` and keyword arguments, plus the loader keys ``batch_size`` (global, in samples) and
``workers``. The modules are grouped by kind:

- :mod:`levyjepa.data.images`: natural images (``image_folder``, ``imagenette``), decoded
  lazily;
- :mod:`levyjepa.data.video`: video files and clips (``video_folder``), readers, clip sampling;
- :mod:`levyjepa.data.generated`: generated data with exact ground truth (``synthetic_shapes``,
  ``scenes``, ``synthetic_video``, ``scene_video``);
- :mod:`levyjepa.data.views`: how training views are made (multi-view datasets, transforms,
  device-made views);
- :mod:`levyjepa.data.loading`: what the loader needs (:class:`DataSplits`, samplers, loader
  options, skipped files).
"""

from levyjepa.data.generated import (  # noqa: F401  (importing registers the sources)
    scene_images,
    scene_video,
    synthetic_shapes,
    synthetic_video,
)
from levyjepa.data.images import image_folder, imagenette  # noqa: F401
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.video import video_folder  # noqa: F401

__all__ = ["DataSplits"]
