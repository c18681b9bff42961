"""The training loop: one function, top to bottom, no callbacks.

Called by :mod:`levyjepa.run` with a resolved recipe. Batch sizes are global: ``data.batch_size``
samples per optimiser step whatever the number of processes (Accelerate splits each batch), so
a recipe means the same experiment on one GPU or eight.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from accelerate import Accelerator, PartialState
from accelerate.utils import (
    DataLoaderConfiguration,
    ProjectConfiguration,
    broadcast_object_list,
    set_seed,
)
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from levyjepa.atomic import atomic_write_json, atomic_write_text
from levyjepa.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from levyjepa.data.loader_options import loader_options
from levyjepa.data.sampling import EpochShuffleSampler
from levyjepa.data.skipped_files import skipped_files_metric
from levyjepa.diagnostics import TrainingDiagnostics
from levyjepa.errors import ConfigError
from levyjepa.global_batchnorm import convert_to_global_batchnorm
from levyjepa.model import Pretrainer
from levyjepa.nonfinite import (
    NonFiniteError,
    finite_flags,
    grad_total_norm,
    nonfinite_names,
)
from levyjepa.objective import build_objective
from levyjepa.optim import build_optimizer, build_scheduler
from levyjepa.probe import OnlineProbe
from levyjepa.registry import DATA, ENCODERS
from levyjepa.run_dir import RunDirPlan, clear_run_dir, flatten_recipe, plan_run_dir
from levyjepa.runlog import RunLog
from levyjepa.schema import DATA_LOADER_KEYS
from levyjepa.speed import apply_speed_options, channels_last_views

TRAIN_METRICS = ("inv", "sigreg", "within", "lejepa_loss", "orig_lejepa_loss", "probe_loss",
                 "grad_norm")


def train(cfg: DictConfig, *, on_step: Optional[Callable[[int], None]] = None
          ) -> dict[str, Any]:
    """Pretrain an encoder as the recipe says; returns the run summary (also in summary.json).

    Args:
        cfg: A recipe from :func:`levyjepa.recipe.load_recipe`.
        on_step: Called with the step count after every optimiser step (a profiling hook,
            used by ``benchmarks/step.py``).
    """
    started = time.perf_counter()
    # ---- devices, precision, run directory -----------------------------------------------
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
    accelerator = Accelerator(
        cpu=on_cpu,
        mixed_precision=precision,
        dataloader_config=DataLoaderConfiguration(
            split_batches=True, non_blocking=cfg.trainer.pin_memory and not on_cpu),
        log_with=list(cfg.log.trackers) or None,
        project_config=ProjectConfiguration(
            project_dir=str(run_dir), logging_dir=str(run_dir / "tensorboard")
        ),
    )
    set_seed(cfg.seed)
    if on_cpu:  # loader workers and torch's own threads must not oversubscribe the cores
        cores = max(1, (os.cpu_count() or 1) // accelerator.num_processes)
        torch.set_num_threads(cfg.trainer.cpu_threads or max(1, cores - cfg.data.workers))

    # ---- data ------------------------------------------------------------------------------
    data_cfg = OmegaConf.to_container(cfg.data)
    batch_size, workers = data_cfg.pop("batch_size"), data_cfg.pop("workers")
    assert set(DATA_LOADER_KEYS) == {"batch_size", "workers"}
    splits = DATA.build(data_cfg, where="data")
    if batch_size % accelerator.num_processes:
        raise ConfigError(f"data.batch_size={batch_size} is not divisible by the "
                          f"{accelerator.num_processes} processes")
    sampler = EpochShuffleSampler(len(splits.train), seed=cfg.seed)
    loader_kwargs = loader_options(splits.train, workers=workers, on_cuda=not on_cpu,
                                   pin_memory=cfg.trainer.pin_memory,
                                   persistent_workers=cfg.trainer.persistent_workers)
    train_loader = DataLoader(splits.train, batch_size=batch_size, sampler=sampler,
                              drop_last=True, **loader_kwargs)
    if len(train_loader) == 0:
        raise ConfigError(f"data.batch_size={batch_size} is larger than the training set "
                          f"({len(splits.train)} samples)")
    test_loader = None
    if splits.test is not None and len(splits.test) and splits.num_classes:
        test_loader = DataLoader(splits.test, batch_size=batch_size, shuffle=False,
                                 **loader_kwargs)

    # ---- model, objective, optimiser, schedule ----------------------------------------------
    objective = build_objective(OmegaConf.to_container(cfg.objective))
    encoder = ENCODERS.build(OmegaConf.to_container(cfg.encoder), where="encoder",
                             with_tokens_proj=objective.reads_tokens)
    classes = cfg.objective.probe_classes or splits.num_classes
    probe = OnlineProbe(emb_dim=encoder.emb_dim, classes=classes) if splits.num_classes else None
    pretrainer = Pretrainer(encoder, probe)
    if accelerator.num_processes > 1 and cfg.trainer.sync_batchnorm:
        convert_to_global_batchnorm(pretrainer)  # the same statistics as on one process
    model = apply_speed_options(pretrainer, compile=cfg.trainer.compile,
                                channels_last=cfg.trainer.channels_last)
    optimizer = build_optimizer(
        encoder_params=encoder.parameters(),
        probe_params=probe.parameters() if probe is not None else [],
        batch_size=batch_size,
        net_lr_bs256=cfg.optim.net_lr_bs256,
        probe_lr_bs256=cfg.optim.probe_lr_bs256,
        weight_decay=cfg.optim.weight_decay,
        probe_weight_decay=cfg.optim.probe_weight_decay,
        fused=cfg.optim.fused,
    )
    steps_per_epoch = len(train_loader)
    scheduler = build_scheduler(
        optimizer,
        steps_per_epoch=steps_per_epoch,
        epochs=cfg.trainer.epochs,
        warmup_epochs=cfg.optim.warmup_epochs,
        warmup_start=cfg.optim.warmup_start,
        min_lr_ratio=cfg.optim.min_lr_ratio,
    )
    model, optimizer, train_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, scheduler
    )
    if test_loader is not None:
        test_loader = accelerator.prepare(test_loader)
    objective = objective.to(accelerator.device)
    device_views = (splits.device_views.to(accelerator.device)
                    if splits.device_views is not None else None)

    # ---- resume, run directory, trackers -----------------------------------------------------
    resume_from = plan.resume_from
    if plan.clear and accelerator.is_main_process:  # overwrite=true: the old run goes now
        clear_run_dir(run_dir)
    accelerator.wait_for_everyone()
    step = 0
    if resume_from is not None:
        step = load_checkpoint(accelerator, resume_from)["step"]
        accelerator.print(f"resumed from {resume_from} at step {step}")
    total_steps = steps_per_epoch * cfg.trainer.epochs
    stop_step = min(total_steps, cfg.trainer.max_steps or total_steps)
    if accelerator.is_main_process:
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg))
    runlog = RunLog(accelerator, run_dir, resume_step=step if resume_from else None)
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
        f"precision {precision} | {steps_per_epoch} steps/epoch | steps {step}->{stop_step}"
    )

    # ---- the loop -----------------------------------------------------------------------------
    def evaluate() -> float:
        """Online-probe accuracy on the test split (one un-augmented view per image)."""
        model.eval()
        correct = seen = 0
        with torch.no_grad(), accelerator.autocast():
            for images, labels in tqdm(test_loader, desc="test/acc", leave=False,
                                       dynamic_ncols=True, disable=not show_progress):
                _, logits = model(images.unsqueeze(1))
                preds, labels = accelerator.gather_for_metrics((logits.argmax(-1), labels))
                correct += (preds == labels).sum().item()
                seen += labels.numel()
        model.train()
        return correct / max(1, seen)

    def checkpoint() -> None:
        save_checkpoint(accelerator, run_dir, {"step": step, "epoch": step // steps_per_epoch,
                                               "steps_per_epoch": steps_per_epoch},
                        keep=cfg.trainer.keep_checkpoints, model=model, optimizer=optimizer)

    diagnostics = TrainingDiagnostics(every=cfg.log.diagnostics_every, prior=objective.levy,
                                      warn=accelerator.print)
    start_step, last_eval_step, last_ckpt_step = step, -1, step if resume_from else -1
    show_progress = accelerator.is_main_process and cfg.log.progress
    bar = tqdm(total=stop_step, initial=step, dynamic_ncols=True, desc=cfg.name,
               disable=not show_progress)
    skipped_steps = 0
    train_started = time.perf_counter()
    model.train()
    while step < stop_step:
        epoch = step // steps_per_epoch
        done_in_epoch = step - epoch * steps_per_epoch
        loader = (accelerator.skip_first_batches(train_loader, done_in_epoch)
                  if done_in_epoch else train_loader)
        # Accelerate's loaders count epochs themselves and push their count to the sampler (and,
        # in some layouts, the dataset) when iterated: set it, so order and views follow `epoch`.
        loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        if hasattr(splits.train, "set_epoch"):
            splits.train.set_epoch(epoch)
        for views, labels in loader:
            if device_views is not None:  # uint8 images (N, C, H, W) -> views (N, V, C, H, W)
                views = device_views(views, step=step, rank=accelerator.process_index)
            if cfg.trainer.channels_last:
                views = channels_last_views(views)
            lr = optimizer.param_groups[0]["lr"]
            with accelerator.autocast():
                out, logits = model(views)
            terms = objective(out, step=step)
            probe_loss = torch.zeros((), device=views.device)
            if logits is not None:
                targets = labels.repeat_interleave(views.shape[1])
                probe_loss = F.cross_entropy(logits.float(), targets, ignore_index=-1)
            loss = terms["lejepa_loss"] + probe_loss
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            if cfg.optim.grad_clip:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            else:
                grad_norm = grad_total_norm(model.parameters())
            # every term and the gradients, checked before the update (one sync; all processes
            # agree): a NaN never reaches the weights, the optimiser state or a checkpoint
            logged = {**terms, "probe_loss": probe_loss, "grad_norm": grad_norm.to(views.device)}
            flags = finite_flags(logged)
            if accelerator.num_processes > 1:
                flags = accelerator.reduce(flags, reduction="mean")
            bad = nonfinite_names(logged, flags.tolist())
            if bad and cfg.trainer.on_nonfinite == "stop":
                _log_step(runlog, logged, lr, step=step + 1, epoch=epoch, accelerator=accelerator)
                message = _stop_message(bad, step + 1, run_dir)
                bar.close()
                if accelerator.is_main_process:
                    atomic_write_json(run_dir / "summary.json", {
                        "recipe": cfg.name, "run_dir": str(run_dir), "steps": step,
                        "stopped": message, "final": runlog.last})
                accelerator.end_training()
                raise NonFiniteError(message)
            if bad:  # skip: this step's update is dropped, the schedule and data move on
                skipped_steps += 1
                optimizer.zero_grad(set_to_none=True)
                accelerator.print(f"step {step + 1}: non-finite {', '.join(bad)}; update "
                                  f"skipped ({skipped_steps} so far)")
            else:
                optimizer.step()
            scheduler.step()
            step += 1
            if on_step is not None:
                on_step(step)

            if step % cfg.log.every == 0 or step == stop_step:
                extra = {"train/skipped_steps": float(skipped_steps)} if skipped_steps else {}
                extra.update(skipped_files_metric(splits.train, device=accelerator.device))
                metrics = _log_step(runlog, logged, lr, step=step, epoch=epoch,
                                    accelerator=accelerator, extra=extra)
                bar.set_postfix({k.split("/")[1]: f"{v:.4g}" for k, v in metrics.items()
                                 if k in ("train/lejepa_loss", "train/sigreg", "train/within",
                                          "train/probe_loss")})
            if diagnostics.due(step):  # on this batch's outputs, at the step they were made
                runlog.log(diagnostics(out, step=step - 1,
                                       reduce=lambda t: accelerator.reduce(t, reduction="mean")),
                           step=step, epoch=epoch)
            bar.update(1)
            if cfg.trainer.checkpoint_every and step % cfg.trainer.checkpoint_every == 0:
                checkpoint()
                last_ckpt_step = step
            if step >= stop_step:
                break
        if step % steps_per_epoch == 0:  # the epoch is complete
            epochs_done = step // steps_per_epoch
            if (test_loader is not None and cfg.trainer.eval_every
                    and epochs_done % cfg.trainer.eval_every == 0):
                runlog.log({"test/acc": evaluate()}, step=step, epoch=epochs_done)
                last_eval_step = step
            if cfg.trainer.checkpoint_every is None and last_ckpt_step != step:
                checkpoint()
                last_ckpt_step = step
    train_time = time.perf_counter() - train_started
    bar.close()

    # ---- final evaluation, checkpoint and summary ---------------------------------------------
    if test_loader is not None and last_eval_step != step:
        runlog.log({"test/acc": evaluate()}, step=step, epoch=step // steps_per_epoch)
    if last_ckpt_step != step:
        checkpoint()
    if cfg.log.pictures and accelerator.is_main_process:
        from levyjepa.pictures import write_pictures  # matplotlib: imported only when drawing

        write_pictures(accelerator.unwrap_model(model).encoder, objective.levy, splits, run_dir,
                       step=step, trackers=accelerator.trackers)
    views_per_step = batch_size * cfg.data.get("views", 1)
    summary = {
        "recipe": cfg.name,
        "run_dir": str(run_dir),
        "steps": step,
        "epochs": step / steps_per_epoch,
        "steps_this_session": step - start_step,
        "world_size": accelerator.num_processes,
        "device": str(accelerator.device),
        "precision": precision,
        "wall_time_s": time.perf_counter() - started,
        "train_time_s": train_time,
        "views_per_s": (step - start_step) * views_per_step / train_time if train_time else 0.0,
        "skipped_steps": skipped_steps,
        "skipped_files": int(runlog.last.get("data/skipped_files", 0)),
        "final": runlog.last,
        "best": runlog.best,
    }
    if accelerator.is_main_process:
        atomic_write_json(run_dir / "summary.json", summary)
    accelerator.end_training()
    acc = summary["final"].get("test/acc")
    accelerator.print(
        f"done: {step} steps in {summary['wall_time_s']:.1f} s, "
        f"{summary['views_per_s']:.1f} views/s"
        + (f", test/acc {acc:.4f}" if acc is not None and math.isfinite(acc) else "")
        + f" -> {run_dir}"
    )
    if cfg.log.first_look and accelerator.is_main_process:
        from levyjepa.first_look import first_look

        trained_encoder = accelerator.unwrap_model(model).encoder
        first_look(run_dir, prior=objective.levy, grid=getattr(trained_encoder, "grid", None),
                   channels=getattr(trained_encoder, "proj_dim", 0), progress=cfg.log.progress)
    return summary


def _agree_on_run_dir(cfg: DictConfig, run_dir: Path, *, main: bool) -> RunDirPlan:
    """The main process plans the run directory (:mod:`levyjepa.run_dir`); all processes get
    its plan, or raise its error (so no process is left waiting for the others)."""
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


def _log_step(runlog: RunLog, terms: dict[str, torch.Tensor], lr: float, *, step: int,
              epoch: int, accelerator: Accelerator,
              extra: Optional[dict[str, float]] = None) -> dict[str, float]:
    """Log a step's terms as ``train/<name>`` (averaged over processes), its learning rate
    and ``extra``; returns the logged metrics."""
    names = [k for k in TRAIN_METRICS if k in terms]
    values = torch.stack([terms[k].detach().float() for k in names])
    values = accelerator.reduce(values, reduction="mean").tolist()
    metrics = {f"train/{k}": v for k, v in zip(names, values)}
    metrics["train/lr"] = lr
    metrics.update(extra or {})
    runlog.log(metrics, step=step, epoch=epoch)
    return metrics


def _stop_message(bad: list[str], step: int, run_dir: Path) -> str:
    found = list_checkpoints(run_dir)
    last = (f"the last good checkpoint is {found[-1].name}" if found
            else "no checkpoint was written yet")
    return (f"step {step}: non-finite {', '.join(bad)}; stopped before the update; {last}; "
            "resume=auto continues from it (e.g. with a lower optim.net_lr_bs256 and "
            "resume_changes=[optim.net_lr_bs256]), or set trainer.on_nonfinite=skip")
