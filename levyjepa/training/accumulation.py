"""Gradient accumulation: ``optim.accumulate_steps`` micro-batches per optimiser step.

With ``K = optim.accumulate_steps`` the loop runs the method on ``K`` micro-batches of
``data.batch_size`` samples (global, split over the processes), backpropagates each one's loss
divided by ``K`` and steps the optimiser once, so the gradient is the mean of the ``K``
micro-batch gradients: for a loss that is a mean over samples, that is the gradient of one batch
of ``K * data.batch_size`` samples (up to rounding). The effective batch
``data.batch_size * K`` scales the learning rates (:mod:`levyjepa.training.optim`); the
schedule, logging, checkpoints and ``trainer.max_steps`` count optimiser steps. Statistics over
a batch (SIGReg's empirical characteristic function, VICReg's variance and covariance,
BatchNorm) are those of each micro-batch.

Each micro-batch draws its own randomness, reproducibly: its views, masks and the priors'
random directions are seeded by its *draw index* ``step * K + micro`` (:func:`draw_index`) where
the loop passes ``step`` (``== step`` when ``K == 1``). Checkpoints are written at optimiser
steps only, so a run stopped between micro-batches resumes from the last optimiser step and
redoes its micro-batches with the same data and the same draws.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch


def draw_index(step: int, micro: int, accumulate: int) -> int:
    """The seed the loop passes as ``step`` to the views, the method and the priors for
    micro-batch ``micro`` (0-based) of optimiser step ``step`` (steps done before it): distinct
    for every micro-batch of a run, and ``step`` itself without accumulation."""
    return step * accumulate + micro


def gradient_sync(accelerator: Any, model: torch.nn.Module, *, last: bool
                  ) -> contextlib.AbstractContextManager:
    """Where a micro-batch's forward and backward run: several processes all-reduce the
    gradients only on the last micro-batch of an optimiser step (``no_sync`` before it)."""
    return contextlib.nullcontext() if last else accelerator.no_sync(model)


def mean_terms(parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """An optimiser step's terms: the mean of its micro-batches' (scalar) terms, detached; one
    micro-batch's terms are returned as they are. A non-finite term of any micro-batch makes
    the mean non-finite."""
    if len(parts) == 1:
        return dict(parts[0])
    return {name: torch.stack([p[name].detach().float().reshape(()) for p in parts]).mean()
            for name in parts[0]}
