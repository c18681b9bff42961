"""How training views are made from an image source's images: the recipe's ``views`` section.

- :mod:`~levyjepa.data.views.seed_views`, :mod:`~levyjepa.data.views.light_views`: the
  registered view pipelines ``seed`` (natural images) and ``light`` (small generated images),
  both with multi-crop (global and local views);
- :mod:`~levyjepa.data.views.view_splits`: a pipeline's transforms applied to a source's images
  (training, ``train_eval`` and test splits);
- :mod:`~levyjepa.data.views.multi_view`: datasets of ``V`` views per item, seeded per
  ``(seed, epoch, index)``, and the deterministic test view;
- :mod:`~levyjepa.data.views.transforms`: the per-image torchvision pipelines;
- :mod:`~levyjepa.data.views.device_views`, :mod:`~levyjepa.data.views.view_params`,
  :mod:`~levyjepa.data.views.batch_ops`: the same views made in batch on the training device
  (``views.on: device``).
"""
