"""``views: {name: seed}``: the seed experiments' views of natural images, with multi-crop.

Global views are the seed's (docs/seed_experiments.md): RandomResizedCrop, colour jitter,
grayscale, blur, solarisation and flip (:func:`levyjepa.data.views.transforms.ssl_augmentation`);
the test view is Resize + CenterCrop (:func:`levyjepa.data.views.transforms.center_view`).
``local_views`` adds LeJEPA's multi-crop: ``L`` more views per image at ``local_size`` px, cut
from ``local_scale`` of the image, with the same photometric augmentation (the LeJEPA guide uses
2 global views at 224 px and 6 local views at 96 px). ``on: device`` makes the training views in
batch on the training device (:mod:`levyjepa.data.views.device_views`): the loader then only
decodes images to ``load_size`` px.
"""

from __future__ import annotations

from typing import Optional

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import VIEWS
from levyjepa.data.loading.image_source import ImageSource
from levyjepa.data.loading.splits import DataSplits
from levyjepa.data.views.device_views import DeviceViews
from levyjepa.data.views.photometric import Photometric
from levyjepa.data.views.transforms import center_view, ssl_augmentation
from levyjepa.data.views.view_splits import (
    check_groups,
    cpu_view_splits,
    device_view_splits,
    view_groups,
)

ON = ("cpu", "device")
"""Valid values of ``views.on``."""


@VIEWS.register("seed")
class SeedViews:
    """The seed's views: ``global_views`` + ``local_views`` per training image, one test view.

    Args:
        global_views: Global views ``G`` per training image.
        global_size: Side of the global views and of the test view, in pixels.
        global_scale: Area range of the global views' random resized crop.
        local_views: Local views ``L`` per training image (0: none).
        local_size: Side of the local views.
        local_scale: Area range of the local views' crop.
        color_jitter: Brightness, contrast, saturation and hue strengths.
        color_jitter_p: Probability of the colour jitter.
        grayscale_p: Probability of grayscale.
        blur_kernel: Odd side of the Gaussian blur kernel.
        blur_sigma: Range of the blur's standard deviation.
        blur_p: Probability of the blur.
        solarize_threshold: Solarisation threshold (0-255).
        solarize_p: Probability of solarisation.
        flip_p: Probability of a horizontal flip.
        on: Where the training views are made: ``cpu`` (loader workers, one image at a time)
            or ``device`` (the loader yields uint8 images of ``load_size`` px, the training
            device makes the views of each batch).
        load_size: Side of the uint8 images the loader yields with ``on: device``.
        seed: Seed of the augmentation (drawn per epoch and item); ``None`` in a recipe: the
            recipe's top-level ``seed``, which :func:`levyjepa.data.build.build_splits` passes.

    Raises:
        ConfigError: naming the ``views.*`` key of a bad count, size, scale or ``on``.
        ValueError: naming a bad photometric parameter.
    """

    def __init__(
        self,
        *,
        global_views: int = 4,
        global_size: int = 128,
        global_scale: tuple[float, float] = (0.08, 1.0),
        local_views: int = 0,
        local_size: int = 96,
        local_scale: tuple[float, float] = (0.05, 0.3),
        color_jitter: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 0.2),
        color_jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_kernel: int = 7,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        blur_p: float = 0.5,
        solarize_threshold: int = 128,
        solarize_p: float = 0.1,
        flip_p: float = 0.5,
        on: str = "cpu",
        load_size: int = 160,
        seed: Optional[int] = None,
    ) -> None:
        check_groups(global_views=global_views, global_size=global_size,
                     global_scale=global_scale, local_views=local_views, local_size=local_size,
                     local_scale=local_scale)
        if on not in ON:
            raise ConfigError(f"views.on must be one of {', '.join(ON)}, got {on!r}")
        if isinstance(load_size, bool) or not isinstance(load_size, int) or load_size < 1:
            raise ConfigError(f"views.load_size must be a positive integer, got {load_size!r}")
        if seed is None:
            raise ValueError("seed is None: build_splits passes the recipe's seed; give one")
        self.photometric = Photometric(
            color_jitter=tuple(color_jitter), color_jitter_p=color_jitter_p,
            grayscale_p=grayscale_p, blur_kernel=blur_kernel, blur_sigma=tuple(blur_sigma),
            blur_p=blur_p, solarize_threshold=solarize_threshold, solarize_p=solarize_p,
            flip_p=flip_p,
        )
        self.global_views, self.global_size = global_views, global_size
        self.global_scale = (float(global_scale[0]), float(global_scale[1]))
        self.local_views, self.local_size = local_views, local_size
        self.local_scale = (float(local_scale[0]), float(local_scale[1]))
        self.on, self.load_size, self.seed = on, load_size, seed
        self.transform = ssl_augmentation(global_size, crop_scale=tuple(global_scale),
                                          photometric=self.photometric)  # validates it
        self.local_transform = (ssl_augmentation(local_size, crop_scale=tuple(local_scale),
                                                 photometric=self.photometric)
                                if local_views else None)

    def __call__(self, source: ImageSource) -> DataSplits:
        """The training, ``train_eval`` and test splits of ``source``'s images."""
        splits = cpu_view_splits(
            source, transform=self.transform, views=self.global_views, seed=self.seed,
            test_transform=center_view(self.global_size), local_transform=self.local_transform,
            local_views=self.local_views,
            groups=view_groups(self.global_views, self.global_size, self.local_views,
                               self.local_size))
        if self.on == "cpu":
            return splits
        device_views = DeviceViews(
            size=self.global_size, views=self.global_views, seed=self.seed,
            crop_scale=self.global_scale, local_views=self.local_views,
            local_size=self.local_size, local_scale=self.local_scale,
            photometric=self.photometric)
        return device_view_splits(splits, source, load_size=self.load_size,
                                  device_views=device_views)
