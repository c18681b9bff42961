"""``views: {name: light}``: light views of small generated images, with multi-crop.

A global view is a random resized crop, a flip and a colour change
(:func:`levyjepa.data.views.transforms.light_augmentation`), the test view the image resized and
centre-cropped (:func:`levyjepa.data.views.transforms.eval_transform`). ``global_size`` defaults
to the source's own image side (``data.size`` of ``synthetic_shapes`` and ``scenes``).
``local_views`` adds multi-crop: ``L`` more views per image at ``local_size`` px, cut from
``local_scale`` of the image.
"""

from __future__ import annotations

from typing import Optional

import torch
from torchvision.transforms import v2

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import VIEWS
from levyjepa.data.loading.image_source import ImageSource
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.views.transforms import eval_transform, light_augmentation
from levyjepa.data.views.view_splits import check_groups, cpu_view_splits, view_groups


@VIEWS.register("light")
class LightViews:
    """Light views: ``global_views`` + ``local_views`` per training image, one test view.

    Args:
        global_views: Global views ``G`` per training image.
        global_size: Side of the global views and of the test view; ``None``: the source's
            image side (a source of natural images, whose sizes vary, needs it set).
        global_scale: Area range of the global views' random resized crop.
        local_views: Local views ``L`` per training image (0: none).
        local_size: Side of the local views.
        local_scale: Area range of the local views' crop.
        seed: Seed of the augmentation (drawn per epoch and item); ``None`` in a recipe: the
            recipe's top-level ``seed``, which :func:`levyjepa.data.build.build_splits` passes.

    Raises:
        ConfigError: naming the ``views.*`` key of a bad count, size or scale.
    """

    def __init__(
        self,
        *,
        global_views: int = 2,
        global_size: Optional[int] = None,
        global_scale: tuple[float, float] = (0.25, 1.0),
        local_views: int = 0,
        local_size: int = 96,
        local_scale: tuple[float, float] = (0.05, 0.3),
        seed: Optional[int] = None,
    ) -> None:
        check_groups(global_views=global_views, global_size=global_size,
                     global_scale=global_scale, local_views=local_views, local_size=local_size,
                     local_scale=local_scale)
        if seed is None:
            raise ValueError("seed is None: build_splits passes the recipe's seed; give one")
        self.global_views, self.global_size = global_views, global_size
        self.global_scale = (float(global_scale[0]), float(global_scale[1]))
        self.local_views, self.local_size = local_views, local_size
        self.local_scale = (float(local_scale[0]), float(local_scale[1]))
        self.seed = seed

    def __call__(self, source: ImageSource) -> DataSplits:
        """The training, ``train_eval`` and test splits of ``source``'s images."""
        size = self.global_size if self.global_size is not None else source.image_size
        if size is None:
            raise ConfigError("views.global_size: the data source's images have no one size "
                              "(natural images); set views.global_size (e.g. 128)")
        def on_tensors(transform: v2.Transform) -> v2.Transform:  # PIL images: to tensors first
            decoded = isinstance(source.train.images, torch.Tensor)
            return transform if decoded else v2.Compose([v2.ToImage(), transform])

        local = (on_tensors(light_augmentation(self.local_size, crop_scale=self.local_scale))
                 if self.local_views else None)
        return cpu_view_splits(
            source, transform=on_tensors(light_augmentation(size, crop_scale=self.global_scale)),
            views=self.global_views, seed=self.seed,
            test_transform=on_tensors(eval_transform(size)),
            local_transform=local, local_views=self.local_views,
            groups=view_groups(self.global_views, size, self.local_views, self.local_size))
