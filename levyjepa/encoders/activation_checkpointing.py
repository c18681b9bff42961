"""Activation checkpointing: keep fewer activations for the backward pass, recompute the rest.

T. Chen, B. Xu, C. Zhang and C. Guestrin, "Training Deep Nets with Sublinear Memory Cost",
arXiv:1604.06174 (2016). With ``trainer.activation_checkpointing: true`` each transformer block
(or ConvNet stage) keeps only its input for the backward pass and runs its forward again there,
trading about one more forward of the blocks for the memory of their inner activations.
PyTorch's non-reentrant :func:`torch.utils.checkpoint.checkpoint` restores the random state of
the first forward when it recomputes, so dropout and stochastic depth draw the same masks and
the gradients equal those of the plain forward (to float tolerance;
tests/test_activation_checkpointing.py).

timm backbones (``vit``, and ``timm`` models that support it) switch it on with their own
``set_grad_checkpointing``; the clip encoder and the masked forward run their blocks through
:func:`run_blocks`. Without gradients (an EMA teacher, evaluation) nothing is recomputed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def run_blocks(blocks: nn.Sequential, x: torch.Tensor, *, checkpointed: bool) -> torch.Tensor:
    """``blocks(x)``, each block checkpointed when ``checkpointed`` and gradients are on."""
    if not (checkpointed and torch.is_grad_enabled()):
        return blocks(x)
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False)
    return x


def enable_activation_checkpointing(encoder: nn.Module) -> None:
    """Switch activation checkpointing on in a registered encoder.

    Raises:
        ValueError: one line, for an encoder (or a timm architecture) that has none.
    """
    setter = getattr(encoder, "set_activation_checkpointing", None)
    if setter is None:
        raise ValueError(f"encoder '{type(encoder).__name__}' has no activation checkpointing")
    setter(True)
