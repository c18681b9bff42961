"""Video files: the ``video_folder`` source, decoding backends, clip sampling and clip views.

- :mod:`~levyjepa.data.video.video_folder`: the registered source (a folder of videos);
- :mod:`~levyjepa.data.video.video_readers`: decoding backends (PyAV, TorchCodec, decord);
- :mod:`~levyjepa.data.video.video_sources`: where clips come from (files, generated frames);
- :mod:`~levyjepa.data.video.clip_sampling`: which frames a clip takes;
- :mod:`~levyjepa.data.video.video_clips`: clip datasets (training views, centre clip);
- :mod:`~levyjepa.data.video.video_transforms`: the clip augmentation and centre view;
- :mod:`~levyjepa.data.video.video_writer`: writing frames as a video file.
"""

from levyjepa.data.video import video_shards  # noqa: F401  (registers the source)
