"""Decoded 8-bit images of one fixed size: the loader's items when views are made on the device.

With ``views.on: device`` a loader worker only decodes: every image is brought to
``size x size`` (shorter side resized to ``size`` with PIL's bilinear filter, then the central
square cut; an image already of that size is left as it is) and returned as a uint8 tensor, so a
batch stacks into ``(N, 3, size, size)`` and goes to the GPU as bytes, four times smaller than
float views. A local Imagenette 160 px copy is square 160 px, so
there nothing is cut; for non-square images the random crops are drawn inside the central square.
Images that do not decode follow ``on_error`` (:mod:`levyjepa.data.loading.skipped_files`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import to_pil_image

from levyjepa.data.loading.skipped_files import SkipsUnreadableFiles


def square_uint8(image: Union[Image.Image, torch.Tensor], size: int) -> torch.Tensor:
    """An image as a ``(3, size, size)`` uint8 RGB tensor (resize shorter side, centre crop).

    Args:
        image: A PIL image, or an in-memory ``(C, H, W)`` tensor (uint8, or float in ``[0, 1]``,
            1 or 3 channels) as the CIFAR and generated sources hold them.
        size: The side.
    """
    if isinstance(image, torch.Tensor):
        if image.dtype == torch.uint8 and image.shape == (3, size, size):
            return image.contiguous()
        image = to_pil_image(image if image.dtype == torch.uint8 else image.clamp(0, 1))
    image = image.convert("RGB")
    width, height = image.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        new = (max(size, round(width * scale)), max(size, round(height * scale)))
        image = image.resize(new, Image.BILINEAR)
        left, top = (new[0] - size) // 2, (new[1] - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()


class FixedSizeImages(SkipsUnreadableFiles, Dataset):
    """Items ``(image (3, size, size) uint8, label)`` of lazily decoded images.

    Args:
        images: Indexable of PIL images (decoded on access, e.g.
            :class:`levyjepa.data.images.lazy_images.ImageFiles`) or of in-memory ``(C, H, W)``
            tensors.
        labels: Their labels (``-1`` when unlabelled).
        size: Side of every returned image.
        on_error: ``skip`` or ``raise`` for images that do not decode (``None``: in-memory
            images, which cannot fail).
    """

    def __init__(self, images: Sequence[Image.Image], labels: torch.Tensor, *, size: int,
                 on_error: Optional[str] = None) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.size = images, labels, size
        self.track_unreadable(len(images), on_error, noun="image", files=images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.read_readable(index, lambda item: (square_uint8(self.images[item], self.size),
                                                       int(self.labels[item])))
