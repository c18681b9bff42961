"""How training views are made from a source's images.

- :mod:`~levyjepa.data.views.multi_view`: datasets of ``V`` views per item, seeded per
  ``(seed, epoch, index)``, and the deterministic test view;
- :mod:`~levyjepa.data.views.transforms`: the per-image torchvision pipelines;
- :mod:`~levyjepa.data.views.device_views`, :mod:`~levyjepa.data.views.view_params`,
  :mod:`~levyjepa.data.views.batch_ops`: the same views made in batch on the training device;
- :mod:`~levyjepa.data.views.augment_on`: choosing between the two.
"""
