"""What a data source returns and what the training loader needs from it.

- :mod:`~levyjepa.data.loading.image_source`: plain labelled images, what an image source
  returns (the ``views`` section makes their views);
- :mod:`~levyjepa.data.loading.splits`: :class:`~levyjepa.data.loading.splits.DataSplits`, what
  the loop reads (what a video source returns);
- :mod:`~levyjepa.data.loading.sampling`: the epoch-seeded shuffling sampler;
- :mod:`~levyjepa.data.loading.loader_options`: worker, pinning and prefetch options;
- :mod:`~levyjepa.data.loading.skipped_files`: skipping (and counting) unreadable files.
"""
