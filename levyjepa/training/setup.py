"""Building a run: devices, data, model, method, optimiser, schedule, resume and trackers.

:func:`build_run` does everything the training loop (:func:`levyjepa.training.loop.train`) needs
before its first step and returns it as a :class:`Run`. Batch sizes are global:
``data.batch_size`` samples per forward pass whatever the number of processes (Accelerate
splits each batch), so a recipe means the same experiment on one GPU or eight. An optimiser step
takes ``optim.accumulate_steps`` such micro-batches (:mod:`levyjepa.training.accumulation`): the
effective batch ``data.batch_size * optim.accumulate_steps`` scales the learning rates, and an
epoch has ``len(loader) // accumulate_steps`` optimiser steps (a tail of fewer micro-batches is
not read).

``encoder.pretrained`` (:mod:`levyjepa.training.pretrained`) fills the encoder right after it is
built and before the method is, so a teacher the method copies from it starts from the same
weights; nothing else is taken from the file (step 0, a fresh optimiser and fresh method
modules). A resumed run never reads it: the checkpoint's weights win, and the file may be gone.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import (
    DataLoaderConfiguration,
    ProjectConfiguration,
    broadcast_object_list,
    set_seed,
)
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from levyjepa.config.plugins import PLUGINS_FILE, plugin_origins
from levyjepa.config.pretrained_keys import split_pretrained
from levyjepa.core.atomic import atomic_write_json, atomic_write_text
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import ENCODERS
from levyjepa.data.build import build_splits
from levyjepa.data.loading.loader_options import loader_options
from levyjepa.data.loading.sampling import EpochShuffleSampler
from levyjepa.data.loading.skipped_files import check_readable
from levyjepa.data.loading.splits import DataSplits
from levyjepa.encoders.activation_checkpointing import enable_activation_checkpointing
from levyjepa.methods.attached_priors import AttachedPriors
from levyjepa.methods.build import build_method, encoder_runtime
from levyjepa.training.checkpoint import load_checkpoint
from levyjepa.training.global_batchnorm import convert_to_global_batchnorm
from levyjepa.training.model import Pretrainer
from levyjepa.training.online_probe import OnlineProbe
from levyjepa.training.optim import build_optimizer, build_scheduler
from levyjepa.training.pretrained import load_pretrained
from levyjepa.training.run_dir import RunDirPlan, clear_run_dir, flatten_recipe, plan_run_dir
from levyjepa.training.runlog import RunLog
from levyjepa.training.sharding import fsdp_plugin, prepare_cpu_fsdp, set_fsdp_units
from levyjepa.training.speed import apply_speed_options


@dataclass
class Run:
    """Everything a training run holds (see :func:`build_run`)."""

    cfg: DictConfig
    accelerator: Accelerator
    run_dir: Path
    precision: str
    splits: DataSplits
    sampler: EpochShuffleSampler
    train_loader: Any
    test_loader: Optional[Any]
    device_views: Optional[nn.Module]
    model: nn.Module  # the prepared (wrapped) Pretrainer
    priors: AttachedPriors
    optimizer: torch.optim.Optimizer
    scheduler: Any
    batch_size: int  # global samples per micro-batch (data.batch_size)
    accumulate_steps: int  # micro-batches per optimiser step (optim.accumulate_steps)
    steps_per_epoch: int  # optimiser steps
    total_steps: int  # of the schedule: steps_per_epoch * trainer.epochs
    start_step: int
    stop_step: int
    resumed: bool
    runlog: RunLog
    started: float

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` averaged over processes (itself on one process)."""
        return self.accelerator.reduce(values, reduction="mean")

    @property
    def pretrainer(self) -> Pretrainer:
        """The unwrapped :class:`Pretrainer` (encoder, method, probe)."""
        return self.accelerator.unwrap_model(self.model)


def build_run(cfg: DictConfig) -> Run:
    """Build everything a run needs before its first step, in this order: devices and the run
    directory, data, model and method, optimiser and schedule, resume, trackers."""
    started = time.perf_counter()
    accelerator, run_dir, plan, precision, on_cpu = _devices(cfg)

    # ---- data ------------------------------------------------------------------------------
    batch_size, workers = cfg.data.batch_size, cfg.data.workers
    accumulate = cfg.optim.accumulate_steps
    splits = build_splits(cfg)
    if batch_size % accelerator.num_processes:
        raise ConfigError(f"data.batch_size={batch_size} is not divisible by the "
                          f"{accelerator.num_processes} processes")
    sampler = EpochShuffleSampler(len(splits.train), seed=cfg.seed)
    loader_kwargs = loader_options(splits.train, workers=workers, on_cuda=not on_cpu,
                                   pin_memory=cfg.trainer.pin_memory,
                                   persistent_workers=cfg.trainer.persistent_workers)
    train_loader = DataLoader(splits.train, batch_size=batch_size, sampler=sampler,
                              drop_last=True, **loader_kwargs)
    # a folder of unreadable files stops here with one line saying so, not with the batch-size
    # error below (its one file's item still counts) or once the loader has tried every file
    check_readable(splits.train)
    if len(train_loader) == 0:
        raise ConfigError(f"data.batch_size={batch_size} is larger than the training set "
                          f"({len(splits.train)} samples)")
    if len(train_loader) < accumulate:
        raise ConfigError(f"optim.accumulate_steps={accumulate} is more than the "
                          f"{len(train_loader)} batches of data.batch_size={batch_size} in an "
                          "epoch")
    test_loader = None
    if splits.test is not None and len(splits.test) and splits.num_classes:
        test_loader = DataLoader(splits.test, batch_size=batch_size, shuffle=False,
                                 **loader_kwargs)

    # ---- model, method, priors, optimiser, schedule -----------------------------------------
    section, pretrained, strict = split_pretrained(OmegaConf.to_container(cfg.encoder))
    encoder = ENCODERS.build(section, where="encoder", **encoder_runtime(cfg))
    if cfg.trainer.activation_checkpointing:
        try:
            enable_activation_checkpointing(encoder)
        except ValueError as err:
            raise ConfigError(f"trainer.activation_checkpointing=true: {err}; set it to "
                              "false") from None
    if pretrained is not None and plan.resume_from is None:  # before a teacher copies it
        accelerator.print(load_pretrained(encoder, pretrained, strict=strict))
    elif pretrained is not None:
        accelerator.print(f"encoder.pretrained: not read, resuming {plan.resume_from} "
                          "(its weights win)")
    method, priors = build_method(cfg, encoder=encoder, view_groups=splits.view_groups,
                                  num_classes=splits.num_classes)  # refused before any write
    classes = cfg.trainer.probe_classes or splits.num_classes
    # a supervised reference: the probe's cross-entropy trains the encoder (at its own lr)
    probe = (OnlineProbe(emb_dim=encoder.emb_dim, classes=classes,
                         detach=not method.needs.labels_train_encoder)
             if splits.num_classes else None)
    pretrainer = Pretrainer(encoder, method, probe)
    if accelerator.num_processes > 1 and cfg.trainer.sync_batchnorm:
        convert_to_global_batchnorm(pretrainer)  # the same statistics as on one process
    model = apply_speed_options(pretrainer, compile=cfg.trainer.compile,
                                channels_last=cfg.trainer.channels_last)
    optimizer = build_optimizer(
        encoder_params=[*encoder.parameters(),  # a teacher (no gradient) is not optimised
                        *(p for p in method.parameters() if p.requires_grad)],
        probe_params=probe.parameters() if probe is not None else [],
        batch_size=batch_size * accumulate,  # the effective batch of an optimiser step
        net_lr_bs256=cfg.optim.net_lr_bs256,
        probe_lr_bs256=cfg.optim.probe_lr_bs256,
        weight_decay=cfg.optim.weight_decay,
        probe_weight_decay=cfg.optim.probe_weight_decay,
        fused=cfg.optim.fused,
    )
    steps_per_epoch = len(train_loader) // accumulate  # optimiser steps
    scheduler = build_scheduler(
        optimizer,
        steps_per_epoch=steps_per_epoch,
        epochs=cfg.trainer.epochs,
        warmup_epochs=cfg.optim.warmup_epochs,
        warmup_start=cfg.optim.warmup_start,
        min_lr_ratio=cfg.optim.min_lr_ratio,
    )
    units = None
    if cfg.trainer.strategy == "fsdp":  # the model's repeated blocks become the FSDP units
        units = set_fsdp_units(accelerator.state.fsdp_plugin, model)
    model, optimizer, train_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, scheduler
    )
    if test_loader is not None:
        test_loader = accelerator.prepare(test_loader)
    priors = priors.to(accelerator.device)
    device_views = (splits.device_views.to(accelerator.device)
                    if splits.device_views is not None else None)

    # ---- resume, run directory, trackers -----------------------------------------------------
    if plan.clear and accelerator.is_main_process:  # overwrite=true: the old run goes now
        clear_run_dir(run_dir)
    accelerator.wait_for_everyone()
    step = 0
    if plan.resume_from is not None:
        step = load_checkpoint(accelerator, plan.resume_from)["step"]
        accelerator.print(f"resumed from {plan.resume_from} at step {step}")
    total_steps = steps_per_epoch * cfg.trainer.epochs
    stop_step = min(total_steps, cfg.trainer.max_steps or total_steps)
    if accelerator.is_main_process:
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        if cfg.plugins:  # where they were found, for evaluating from another folder
            atomic_write_json(run_dir / PLUGINS_FILE, plugin_origins(cfg.plugins))
    runlog = RunLog(accelerator, run_dir, resume_step=step if plan.resume_from else None)
    if cfg.log.trackers:
        os.environ.setdefault("WANDB_SILENT", "true")
        accelerator.init_trackers(
            cfg.log.project,
            config={k: str(v) if isinstance(v, list) else v
                    for k, v in flatten_recipe(OmegaConf.to_container(cfg)).items()},
            init_kwargs={"wandb": {"dir": str(run_dir), "mode": cfg.log.wandb_mode,
                                   "name": run_dir.name}},
        )
    accelerator.print(
        f"run dir {run_dir} | {accelerator.num_processes} process(es) on {accelerator.device} | "
        f"precision {precision} | method {cfg.method.name} | {steps_per_epoch} steps/epoch"
        + (f" of {accumulate} micro-batches" if accumulate > 1 else "") + " | "
        f"steps {step}->{stop_step}"
        + (f" | fsdp units: {', '.join(units) or 'the whole model'}" if units is not None else "")
    )
    return Run(cfg=cfg, accelerator=accelerator, run_dir=run_dir, precision=precision,
               splits=splits, sampler=sampler, train_loader=train_loader,
               test_loader=test_loader, device_views=device_views, model=model, priors=priors,
               optimizer=optimizer, scheduler=scheduler, batch_size=batch_size,
               accumulate_steps=accumulate,
               steps_per_epoch=steps_per_epoch, total_steps=total_steps, start_step=step,
               stop_step=stop_step,
               resumed=plan.resume_from is not None, runlog=runlog, started=started)


def _devices(cfg: DictConfig) -> tuple[Accelerator, Path, RunDirPlan, str, bool]:
    """The accelerator, the agreed run directory and its plan, the precision, CPU or not."""
    want = cfg.trainer.device
    if want == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device=cuda but no CUDA device is available")
    on_cpu = want == "cpu" or not torch.cuda.is_available()
    precision = "bf16" if cfg.trainer.precision == "bf16" and not on_cpu else "no"
    if cfg.resume == "auto" and cfg.out_dir is None:
        raise ConfigError("resume=auto needs out_dir=... (the run directory to continue)")
    state = PartialState(cpu=on_cpu)  # the process group, before agreeing on the run directory
    out_dir = [cfg.out_dir or f"runs/{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}"]
    broadcast_object_list(out_dir)  # every process writes into the main process's folder
    run_dir = Path(out_dir[0])
    plan = _agree_on_run_dir(cfg, run_dir, main=state.is_main_process)  # nothing written yet
    fsdp = fsdp_plugin() if cfg.trainer.strategy == "fsdp" else None
    if fsdp is not None and state.num_processes < 2:
        raise ConfigError("trainer.strategy=fsdp shards the model over processes, and this run "
                          "has 1: launch 2 or more (accelerate launch --num_processes N) or set "
                          "trainer.strategy=ddp")
    accelerator = Accelerator(
        cpu=on_cpu,
        fsdp_plugin=None if on_cpu else fsdp,
        mixed_precision=precision,
        dataloader_config=DataLoaderConfiguration(
            split_batches=True, non_blocking=cfg.trainer.pin_memory and not on_cpu),
        log_with=list(cfg.log.trackers) or None,
        project_config=ProjectConfiguration(
            project_dir=str(run_dir), logging_dir=str(run_dir / "tensorboard")
        ),
    )
    if fsdp is not None and on_cpu:  # Accelerate selects FSDP for accelerators only
        prepare_cpu_fsdp(accelerator, fsdp)
    set_seed(cfg.seed)
    if on_cpu:  # loader workers and torch's own threads must not oversubscribe the cores
        cores = max(1, (os.cpu_count() or 1) // accelerator.num_processes)
        torch.set_num_threads(cfg.trainer.cpu_threads or max(1, cores - cfg.data.workers))
    return accelerator, run_dir, plan, precision, on_cpu


def _agree_on_run_dir(cfg: DictConfig, run_dir: Path, *, main: bool) -> RunDirPlan:
    """The main process plans the run directory (:mod:`levyjepa.training.run_dir`); all processes
    get its plan, or raise its error (so no process is left waiting for the others)."""
    outcome: list[Any] = [None]
    if main:
        try:
            outcome[0] = plan_run_dir(cfg, run_dir)
        except ConfigError as err:
            outcome[0] = str(err)
    broadcast_object_list(outcome)
    if isinstance(outcome[0], str):
        raise ConfigError(outcome[0])
    return outcome[0]
