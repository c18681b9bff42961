"""The CIFAR stem: a ConvNet's first convolution made 3x3 with stride 1, its stem max-pool removed.

ImageNet ConvNets shrink the input 4x before their first stage (a strided 7x7 or 4x4
convolution, and in ResNets a strided max-pool), which leaves a 32 px image a 1x1 field at the
last stage. CIFAR SSL codebases replace that stem by a 3x3 stride-1 convolution without the
max-pool, as K. He et al. did for CIFAR-10 ("Deep Residual Learning for Image Recognition",
CVPR 2016, section 4.2) and SimCLR for its CIFAR-10 experiments (T. Chen et al., ICML 2020,
appendix B.9). The field's side grows by the removed strides: x4 for ResNets (stride-2
convolution and stride-2 max-pool) and ConvNeXts (a 4x4 stride-4 patchify convolution), x2 for
EfficientNets and MobileNets (one stride-2 convolution); docs/encoders.md gives the sides.
"""

from __future__ import annotations

from torch import nn


def apply_cifar_stem(model: nn.Module) -> None:
    """Replace ``model``'s first convolution and drop its stem max-pool, in place.

    The first convolution is the one timm's ``pretrained_cfg["first_conv"]`` names; it becomes a
    3x3, stride-1, padding-1 convolution with the same channels and bias (initialised as timm's
    ResNets initialise convolutions: Kaiming normal, fan-out). Max-pools removed: a top-level
    ``maxpool`` and any max-pool in the module that holds the first convolution.

    Raises:
        ValueError: if the model names no first convolution or it is not a ``Conv2d``.
    """
    path = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    if not isinstance(path, str):
        raise ValueError(f"cifar_stem: {type(model).__name__} names no first convolution")
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    conv = getattr(parent, leaf)
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"cifar_stem: {path} of {type(model).__name__} is a "
                         f"{type(conv).__name__}, not a Conv2d")
    stem = nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=3, stride=1, padding=1,
                     bias=conv.bias is not None)
    nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
    if stem.bias is not None:
        nn.init.zeros_(stem.bias)
    setattr(parent, leaf, stem)
    if isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
        model.maxpool = nn.Identity()
    if parent is not model:
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.Identity())
