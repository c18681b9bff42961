"""Optimiser and learning-rate schedule of the seed experiments (docs/seed_experiments.md).

AdamW with two parameter groups, each learning rate scaled by ``sqrt(batch / 256)`` from its
value at batch 256 (the square-root rule for adaptive optimisers; Malladi et al., "On the SDEs
and Scaling Rules for Adaptive Gradient Algorithms", NeurIPS 2022). The schedule is a linear
warm-up from ``warmup_start`` times the base rate, then a cosine decay to an absolute floor
``min_lr_ratio * min(group base rates)`` reached at the last step; it is stepped every optimiser
step (every ``optim.accumulate_steps`` batches).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR


def build_optimizer(
    *,
    encoder_params: Iterable[torch.nn.Parameter],
    probe_params: Iterable[torch.nn.Parameter],
    batch_size: int,
    net_lr_bs256: float,
    probe_lr_bs256: float,
    weight_decay: float,
    probe_weight_decay: float,
    fused: bool = True,
) -> torch.optim.AdamW:
    """AdamW with an encoder group and a probe group.

    Args:
        encoder_params: Parameters of the encoder (backbone, pooling, projectors).
        probe_params: Parameters of the online probe (may be empty).
        batch_size: Global batch size of an optimiser step (samples, not views; with gradient
            accumulation the effective batch, ``data.batch_size * optim.accumulate_steps``).
        net_lr_bs256: Encoder learning rate at batch 256.
        probe_lr_bs256: Probe learning rate at batch 256.
        weight_decay: Encoder weight decay.
        probe_weight_decay: Probe weight decay.
        fused: Use the fused AdamW kernel (one kernel for every parameter, on CUDA and on the
            CPU); ``False`` gives PyTorch's default implementation. Same update either way, up
            to rounding.
    """
    scale = math.sqrt(batch_size / 256)
    groups = [
        {"params": list(encoder_params), "lr": net_lr_bs256 * scale, "weight_decay": weight_decay},
    ]
    probe_params = list(probe_params)
    if probe_params:
        groups.append(
            {"params": probe_params, "lr": probe_lr_bs256 * scale,
             "weight_decay": probe_weight_decay}
        )
    return torch.optim.AdamW(groups, fused=True) if fused else torch.optim.AdamW(groups)


def lr_at(step: int, *, base: float, floor: float, warmup: int, total: int, start: float) -> float:
    """Learning rate at ``step`` (0-based, before the step is taken).

    Args:
        step: Optimiser steps already taken.
        base: The group's peak learning rate.
        floor: Absolute learning rate at the end of the cosine.
        warmup: Warm-up length in steps.
        total: Total number of steps of the schedule.
        start: Warm-up start, as a fraction of ``base``.
    """
    if step < warmup:
        return base * (start + (1.0 - start) * step / warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    steps_per_epoch: int,
    epochs: int,
    warmup_epochs: float,
    warmup_start: float,
    min_lr_ratio: float,
) -> LambdaLR:
    """Per-step warm-up + cosine schedule for every group of ``optimizer``."""
    total = steps_per_epoch * epochs
    warmup = min(total, round(warmup_epochs * steps_per_epoch))
    bases = [group["lr"] for group in optimizer.param_groups]
    floor = min_lr_ratio * min(bases)

    def factor(base: float):  # one closure per group: LambdaLR multiplies the base rate
        return lambda step: lr_at(
            step, base=base, floor=floor, warmup=warmup, total=total, start=warmup_start
        ) / base

    return LambdaLR(optimizer, [factor(b) for b in bases])
