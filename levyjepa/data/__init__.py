"""Data sources and view pipelines: what a run trains on, built by :func:`build.build_splits`.

May import core and the other component packages (encoders, priors, methods, data); never
diagnostics, config, training, eval, studies or the entry points.

A data source is registered in :data:`levyjepa.DATA`; the recipe's ``data`` section gives its
``name`` and keyword arguments, plus the loader keys ``batch_size`` (global, in samples) and
``workers``. An image source returns plain labelled images (:class:`ImageSource`) and the
recipe's ``views`` section, a view pipeline of :data:`levyjepa.VIEWS`, makes their views; a
video source returns its :class:`DataSplits` itself. The modules are grouped by kind:

- :mod:`levyjepa.data.images`: natural images (``image_folder``, ``imagenette``, ``cifar``,
  ``image_shards``, ``hf_dataset``), decoded lazily;
- :mod:`levyjepa.data.video`: video files and clips (``video_folder``, ``video_shards``),
  readers, clip sampling;
- :mod:`levyjepa.data.shards`: tar shards, their index and ``python -m levyjepa.data.shards``,
  which writes them;
- :mod:`levyjepa.data.generated`: generated data with exact ground truth (``synthetic_shapes``,
  ``scenes``, ``synthetic_video``, ``scene_video``);
- :mod:`levyjepa.data.views`: how training views are made (the ``seed`` and ``light`` view
  pipelines, multi-view datasets, transforms, device-made views);
- :mod:`levyjepa.data.loading`: what sources return and the loader needs (:class:`ImageSource`,
  :class:`DataSplits`, samplers, loader options, skipped files);
- :mod:`levyjepa.data.build`: the ``data`` and ``views`` sections to the run's splits;
  :mod:`levyjepa.data.moved_keys`: the ``data`` keys that moved to ``views``.
"""

from levyjepa.data.generated import (  # noqa: F401  (importing registers the sources)
    scene_images,
    scene_video,
    synthetic_shapes,
    synthetic_video,
)
from levyjepa.data.images import cifar, image_folder, imagenette  # noqa: F401
from levyjepa.data.loading.image_source import ImageSource
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.video import clip_lists, video_folder  # noqa: F401
from levyjepa.data.views import light_views, seed_views  # noqa: F401  (registers the pipelines)

__all__ = ["DataSplits", "ImageSource"]
