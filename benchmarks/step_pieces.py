"""The pieces of one training step, built as :func:`levyjepa.training.setup.build_run` builds them
(used by ``benchmarks/step.py``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from levyjepa.core.registry import ENCODERS
from levyjepa.data.build import build_splits
from levyjepa.data.loading.loader_options import loader_options
from levyjepa.data.loading.sampling import EpochShuffleSampler
from levyjepa.methods.attached_priors import AttachedPriors
from levyjepa.methods.base import MethodOutput
from levyjepa.methods.build import build_method, encoder_runtime
from levyjepa.training.model import Pretrainer
from levyjepa.training.online_probe import OnlineProbe
from levyjepa.training.optim import build_optimizer, build_scheduler
from levyjepa.training.speed import apply_speed_options, channels_last_views


@dataclass
class Pieces:
    """Everything one training step uses, built as :func:`levyjepa.training.setup.build_run`
    builds it."""

    cfg: DictConfig
    device: torch.device
    bf16: bool
    loader: DataLoader
    test_loader: Optional[DataLoader]
    model: Pretrainer  # encoder, method, probe
    priors: AttachedPriors
    optimizer: torch.optim.Optimizer
    scheduler: Any
    device_views: Optional[torch.nn.Module]
    views_per_step: int
    steps_per_epoch: int
    non_blocking: bool


def training_device(cfg: DictConfig) -> torch.device:
    """The device :func:`levyjepa.training.loop.train` would use for this recipe."""
    if cfg.trainer.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def set_threads(cfg: DictConfig, device: torch.device) -> None:
    """Torch CPU threads as the training loop sets them (one core per loader worker left)."""
    if device.type == "cpu":
        cores = max(1, os.cpu_count() or 1)
        torch.set_num_threads(cfg.trainer.cpu_threads or max(1, cores - cfg.data.workers))


def build_pieces(cfg: DictConfig, *, compile: Optional[bool] = None) -> Pieces:
    """Data, encoder, method, priors, probe, optimiser and schedule of ``cfg`` on the training
    device.

    Args:
        cfg: The recipe.
        compile: Override of ``trainer.compile`` (``None``: as the recipe says).
    """
    device = training_device(cfg)
    set_threads(cfg, device)
    torch.manual_seed(cfg.seed)
    batch_size, workers = cfg.data.batch_size, cfg.data.workers
    splits = build_splits(cfg)
    on_cuda = device.type == "cuda"
    options = loader_options(splits.train, workers=workers, on_cuda=on_cuda,
                             pin_memory=cfg.trainer.pin_memory,
                             persistent_workers=cfg.trainer.persistent_workers)
    loader = DataLoader(splits.train, batch_size=batch_size, drop_last=True,
                        sampler=EpochShuffleSampler(len(splits.train), seed=cfg.seed), **options)
    test_loader = None
    if splits.test is not None and len(splits.test) and splits.num_classes:
        test_loader = DataLoader(splits.test, batch_size=batch_size, shuffle=False,
                                 **loader_options(splits.test, workers=workers, on_cuda=on_cuda,
                                                  pin_memory=cfg.trainer.pin_memory,
                                                  persistent_workers=False))
    encoder = ENCODERS.build(OmegaConf.to_container(cfg.encoder), where="encoder",
                             **encoder_runtime(cfg))
    view_groups = splits.view_groups
    method, priors = build_method(cfg, encoder=encoder, view_groups=view_groups)
    classes = cfg.trainer.probe_classes or splits.num_classes
    probe = OnlineProbe(emb_dim=encoder.emb_dim, classes=classes) if splits.num_classes else None
    compile = cfg.trainer.compile if compile is None else compile
    model = apply_speed_options(Pretrainer(encoder, method, probe), compile=compile,
                                channels_last=cfg.trainer.channels_last).to(device)
    optimizer = build_optimizer(
        encoder_params=[*encoder.parameters(),  # a teacher (no gradient) is not optimised
                        *(q for q in method.parameters() if q.requires_grad)],
        probe_params=probe.parameters() if probe is not None else [],
        batch_size=batch_size, net_lr_bs256=cfg.optim.net_lr_bs256,
        probe_lr_bs256=cfg.optim.probe_lr_bs256, weight_decay=cfg.optim.weight_decay,
        probe_weight_decay=cfg.optim.probe_weight_decay, fused=cfg.optim.fused,
    )
    scheduler = build_scheduler(
        optimizer, steps_per_epoch=len(loader), epochs=cfg.trainer.epochs,
        warmup_epochs=cfg.optim.warmup_epochs, warmup_start=cfg.optim.warmup_start,
        min_lr_ratio=cfg.optim.min_lr_ratio,
    )
    device_views = splits.device_views.to(device) if splits.device_views is not None else None
    return Pieces(
        cfg=cfg, device=device, bf16=on_cuda and cfg.trainer.precision == "bf16",
        loader=loader, test_loader=test_loader, model=model, priors=priors.to(device),
        optimizer=optimizer, scheduler=scheduler, device_views=device_views,
        views_per_step=count_views(batch_size, view_groups), steps_per_epoch=len(loader),
        non_blocking=options["pin_memory"],
    )


def count_views(batch_size: int, view_groups: Any) -> int:
    """Views a step encodes: ``batch_size`` samples times the views of every view group."""
    return batch_size * sum(count for count, _ in view_groups)


def view_groups_of(cfg: DictConfig) -> Any:
    """``(count, size)`` of each view group the recipe's data makes (the data is built)."""
    return build_splits(cfg).view_groups


def to_device(views: Any, p: Pieces) -> Any:
    """A batch's views (a tensor, or one per view group) on the training device."""
    if isinstance(views, (list, tuple)):
        return type(views)(v.to(p.device, non_blocking=p.non_blocking) for v in views)
    return views.to(p.device, non_blocking=p.non_blocking)


def model_views(p: Pieces, views: Any, *, step: int) -> list[torch.Tensor]:
    """The views as the loop hands them to the model: a list of view groups ``(N, V_g, ...)``
    (made on the device when the recipe says so), channels-last when the recipe says so."""
    if p.device_views is not None:
        views = p.device_views(views, step=step)
    groups = list(views) if isinstance(views, (list, tuple)) else [views]
    if p.cfg.trainer.channels_last:
        groups = [channels_last_views(g) for g in groups]
    return groups


def step_loss(p: Pieces, result: MethodOutput, logits: Optional[torch.Tensor],
              labels: torch.Tensor, *, step: int) -> torch.Tensor:
    """The loop's loss: the method's ``loss`` with the attached priors, plus the probe's."""
    terms = p.priors(result.terms, result.outputs, step=step)
    loss = terms["loss"]
    if logits is not None:
        targets = labels.repeat_interleave(logits.shape[0] // labels.shape[0])
        loss = loss + F.cross_entropy(logits.float(), targets, ignore_index=-1)
    return loss


def autocast(p: Pieces) -> contextlib.AbstractContextManager:
    """bf16 autocast when the recipe trains in bf16 on a GPU (as Accelerate does), else none."""
    if p.bf16:
        return torch.autocast(device_type=p.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batches(p: Pieces) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches, epoch after epoch."""
    epoch = 0
    while True:
        p.loader.sampler.set_epoch(epoch)
        if hasattr(p.loader.dataset, "set_epoch"):
            p.loader.dataset.set_epoch(epoch)
        yield from p.loader
        epoch += 1
