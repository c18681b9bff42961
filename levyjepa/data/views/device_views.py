"""The seed's training views (docs/seed_experiments.md) made in batch on the training device.

With ``views.on: device`` the loader only decodes: it yields 8-bit images of one fixed size,
and :class:`DeviceViews` turns each batch ``(N, 3, H, W)`` into ``V`` views per image
``(N, V, 3, size, size)`` on the GPU (or the CPU), plus ``L`` local views per image at a second
size with multi-crop, with parameters drawn per view (see
:mod:`levyjepa.data.views.view_params`) and applied by the batched operations of
:mod:`levyjepa.data.views.batch_ops`, in the seed's order: crop-resize, colour jitter, grayscale,
blur, solarisation, flip, normalisation (the flip is done right after the crop, which gives the same
image: every later operation is pointwise or left-right symmetric).

Differences from the per-image torchvision pipeline, none of which changes a parameter's law:
the image is kept in float between operations (the seed's PIL pipeline rounds to 8 bits after
each), the outermost output pixels of an enlarged crop interpolate with the source pixels just
outside the crop (torchvision repeats the crop's edge pixels), and a shrunk crop is averaged
over ``ceil(crop / size)`` bilinear samples per pixel and axis instead of torchvision's
anti-aliasing filter.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.transforms import v2

from levyjepa.data.views import batch_ops
from levyjepa.data.views.multi_view import item_seed
from levyjepa.data.views.photometric import SEED_PHOTOMETRIC, Photometric
from levyjepa.data.views.transforms import IMAGENET_MEAN, IMAGENET_STD, ssl_augmentation
from levyjepa.data.views.view_params import ViewParams, sample_view_params

_JITTER = (batch_ops.adjust_brightness, batch_ops.adjust_contrast, batch_ops.adjust_saturation,
           batch_ops.adjust_hue)


LOCAL_STREAM = 0x10CA1
"""Mixed into the seed of the local views' parameters, so they are drawn from their own stream."""


class DeviceViews(nn.Module):
    """``V`` augmented views of every image of a uint8 batch, made where the batch is.

    ``size``, ``crop_scale`` and ``photometric`` are the arguments of
    :func:`levyjepa.data.views.transforms.ssl_augmentation` (validated by it, with the same
    messages), plus ``views`` and ``seed``, and the local group of multi-crop: ``local_views``
    views of ``local_size`` px whose crops cover ``local_scale`` of the image, with the same
    photometric augmentation.

    Args:
        size: Side of every (global) view.
        views: Global views ``V`` per image.
        seed: Base seed; the views of a batch depend on ``(seed, step, rank)`` only.
        crop_scale: Area range of the global views' crop.
        photometric: Colour jitter, grayscale, blur, solarisation and flip parameters.
        local_views: Local views ``L`` per image (0: none; the output is one tensor).
        local_size: Side of every local view.
        local_scale: Area range of the local views' crop.

    Raises:
        ValueError: naming the first invalid argument.
    """

    def __init__(
        self,
        *,
        size: int,
        views: int,
        seed: int = 0,
        crop_scale: tuple[float, float] = (0.08, 1.0),
        photometric: Photometric = SEED_PHOTOMETRIC,
        local_views: int = 0,
        local_size: int = 96,
        local_scale: tuple[float, float] = (0.05, 0.3),
    ) -> None:
        super().__init__()
        if isinstance(views, bool) or not isinstance(views, int) or views < 1:
            raise ValueError(f"views must be a positive integer, got {views!r}")
        if isinstance(local_views, bool) or not isinstance(local_views, int) or local_views < 0:
            raise ValueError(f"local_views must be a non-negative integer, got {local_views!r}")
        self.crop_scale, self.local_scale = tuple(crop_scale), tuple(local_scale)
        self.photometric = photometric
        self.size, self.views, self.seed = size, views, seed
        self.local_size, self.local_views = local_size, local_views
        self.reference()  # validates every argument
        if local_views:
            self.local_reference()
        self.blur_kernel = photometric.blur_kernel
        self.solarize_threshold = photometric.solarize_threshold / 255.0
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def reference(self) -> v2.Compose:
        """The equivalent per-image torchvision pipeline of a global view (``ssl_augmentation``)."""
        return ssl_augmentation(self.size, crop_scale=self.crop_scale,
                                photometric=self.photometric)

    def local_reference(self) -> v2.Compose:
        """The equivalent per-image torchvision pipeline of a local view."""
        return ssl_augmentation(self.local_size, crop_scale=self.local_scale,
                                photometric=self.photometric)

    def sample(self, images: torch.Tensor, *, step: int, rank: int = 0) -> ViewParams:
        """Draw the global views' parameters of the batch ``images`` ``(N, 3, H, W)``."""
        generator = torch.Generator().manual_seed(item_seed(self.seed, step, rank))
        n, _, height, width = images.shape
        return sample_view_params(images=n, views=self.views, height=height, width=width,
                                  crop_scale=self.crop_scale, photometric=self.photometric,
                                  generator=generator)

    def sample_local(self, images: torch.Tensor, *, step: int, rank: int = 0) -> ViewParams:
        """Draw the local views' parameters (their own stream: not those of the global views)."""
        seed = item_seed(self.seed, step, rank) ^ LOCAL_STREAM
        generator = torch.Generator().manual_seed(seed)
        n, _, height, width = images.shape
        return sample_view_params(images=n, views=self.local_views, height=height, width=width,
                                  crop_scale=self.local_scale, photometric=self.photometric,
                                  generator=generator)

    def forward(self, images: torch.Tensor, *, step: int, rank: int = 0
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Views of a batch of 8-bit images.

        Args:
            images: ``(N, 3, H, W)`` uint8 images (any device).
            step: Optimiser step (with ``rank`` and the seed, fixes every random draw).
            rank: Process index (processes see different images, so they draw differently).

        Returns:
            ``(N, V, 3, size, size)`` float32 views, ImageNet-normalised, on ``images.device``;
            with local views the pair of that and ``(N, L, 3, local_size, local_size)``.
        """
        views = self.apply(images, self.sample(images, step=step, rank=rank))
        if not self.local_views:
            return views
        params = self.sample_local(images, step=step, rank=rank)
        return views, self._make(images, params, size=self.local_size, views=self.local_views)

    def apply(self, images: torch.Tensor, params: ViewParams) -> torch.Tensor:
        """Views of ``images`` ``(N, 3, H, W)`` uint8 with the given parameters.

        Returns:
            ``(N, V, 3, size, size)`` float32 views, ImageNet-normalised.
        """
        return self._make(images, params, size=self.size, views=self.views)

    def _make(self, images: torch.Tensor, params: ViewParams, *, size: int, views: int
              ) -> torch.Tensor:
        """``(N, views, 3, size, size)`` views of ``images`` with the given parameters."""
        if images.dim() != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
            raise ValueError("DeviceViews expects uint8 images (N, 3, H, W), got "
                             f"{images.dtype} {tuple(images.shape)}")
        device = images.device

        def where(mask: torch.Tensor) -> torch.Tensor:  # indices chosen on the CPU, no sync
            return mask.nonzero().squeeze(1).to(device, non_blocking=True)

        x = batch_ops.crop_resize(images.float().div_(255.0), params.boxes, params.source, size)
        flip = where(params.flip)
        if len(flip):
            x[flip] = x[flip].flip(-1)
        for slot in range(4):  # the jitter's operations in each view's own order
            for op, fn in enumerate(_JITTER):
                chosen = params.jitter & (params.order[:, slot] == op)
                if chosen.any():
                    idx = where(chosen)
                    x[idx] = fn(x[idx], params.factors[chosen, op])
        gray = where(params.gray)
        if len(gray):
            x[gray] = batch_ops.to_grayscale(x[gray])
        blur = where(params.blur)
        if len(blur):
            x[blur] = batch_ops.gaussian_blur(x[blur], params.sigma[params.blur],
                                              self.blur_kernel)
        solarize = where(params.solarize)
        if len(solarize):
            x[solarize] = batch_ops.solarize(x[solarize], self.solarize_threshold)
        x = (x - self.mean) / self.std
        return x.unflatten(0, (images.shape[0], views))
