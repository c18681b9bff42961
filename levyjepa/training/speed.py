"""Model-side speed options of a recipe: ``trainer.compile`` and ``trainer.channels_last``.

* ``trainer.compile``: ``torch.compile`` of the model's forward (and so its backward), in place
  (``nn.Module.compile``): parameter names, checkpoints and Accelerate's wrapping are unchanged.
  The priors attached by the recipe stay eager: they take the step as an argument, which would
  recompile.
* ``trainer.channels_last``: the model's 4-D weights (a ViT's patch-embedding convolution) and
  every batch of views in channels-last memory order. A ViT has one convolution, so this can
  only help that one layer (cuDNN's NHWC kernels under bf16); it is off by default.

The fused AdamW kernel is the optimiser's option ``optim.fused`` (:mod:`levyjepa.training.optim`).
"""

from __future__ import annotations

import torch
from torch import nn


def apply_speed_options(model: nn.Module, *, compile: bool, channels_last: bool) -> nn.Module:
    """Apply the options to ``model`` in place and return it.

    Args:
        model: The module to train.
        compile: Compile its forward with ``torch.compile`` (default inductor backend).
        channels_last: Put its 4-D parameters in channels-last memory order.
    """
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        model.compile()
    return model


def channels_last_views(views: torch.Tensor) -> torch.Tensor:
    """``(N, V, C, H, W)`` views stored so that ``views.flatten(0, 1)`` is channels-last.

    Other shapes (clips ``(N, V, C, T, H, W)``) are returned unchanged.
    """
    if views.dim() != 5:
        return views
    return views.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
