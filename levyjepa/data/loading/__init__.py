"""What the training loader needs from a data source.

- :mod:`~levyjepa.data.loading.splits`: :class:`~levyjepa.data.loading.splits.DataSplits`, what
  a data source returns;
- :mod:`~levyjepa.data.loading.sampling`: the epoch-seeded shuffling sampler;
- :mod:`~levyjepa.data.loading.loader_options`: worker, pinning and prefetch options;
- :mod:`~levyjepa.data.loading.skipped_files`: skipping (and counting) unreadable files.
"""
