"""Video files: the ``video_folder`` source, decoding backends, clip sampling and clip views.

- :mod:`~levyjepa.data.video.video_folder`, :mod:`~levyjepa.data.video.video_shards`: the
  registered sources (a folder of videos, tar shards of them);
- :mod:`~levyjepa.data.video.video_readers`: decoding backends (PyAV,
  :mod:`~levyjepa.data.video.torchcodec_reader`, :mod:`~levyjepa.data.video.decord_reader`);
- :mod:`~levyjepa.data.video.video_sources`: where clips come from (files, generated frames);
- :mod:`~levyjepa.data.video.clip_sampling`: which frames a clip takes;
- :mod:`~levyjepa.data.video.video_clips`: clip datasets (training views, centre clip);
- :mod:`~levyjepa.data.video.video_transforms`: the clip augmentation and centre view;
- :mod:`~levyjepa.data.video.video_writer`: writing frames as a video file.
"""

from levyjepa.data.video import video_shards  # noqa: F401  (registers the source)
