"""The training loop: one function, top to bottom, no callbacks.

Called by :mod:`levyjepa.run` with a resolved recipe::

    python -m levyjepa.run recipes/quickstart.yaml trainer.max_steps=20   # a tiny CPU run

:func:`levyjepa.training.setup.build_run` builds the run (devices, data, model, method, priors,
optimiser, schedule, resume, trackers); the loop below runs the method on each batch, adds the
attached priors and the online probe, steps, and logs every term the method and the priors
return as ``train/<name>``. It knows no loss term by name: it optimises ``loss``. With
``optim.accumulate_steps = K`` it steps every ``K`` micro-batches, each seeded by its own draw
index and its loss divided by ``K`` (:mod:`levyjepa.training.accumulation`); ``step`` always
counts optimiser steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, Optional

import torch
from omegaconf import DictConfig

from levyjepa.core.progress import progress_bar
from levyjepa.data.loading.skipped_files import skipped_files_metric
from levyjepa.diagnostics.representation import TrainingDiagnostics
from levyjepa.training import checkpoint as checkpoints
from levyjepa.training.accumulation import draw_index, gradient_sync, mean_terms
from levyjepa.training.interrupt import StopSignals
from levyjepa.training.run_end import (
    evaluate,
    finish_run,
    gradient_norm,
    log_step,
    nonfinite_terms,
    probe_loss,
    show_terms,
    stop_nonfinite,
)
from levyjepa.training.setup import Run, build_run
from levyjepa.training.speed import channels_last_views


def train(cfg: DictConfig, *, on_step: Optional[Callable[[int], None]] = None
          ) -> dict[str, Any]:
    """Pretrain an encoder as the recipe says; returns the run summary (also in summary.json).

    Args:
        cfg: A recipe from :func:`levyjepa.config.recipe.load_recipe`.
        on_step: Called with the step count after every optimiser step (a profiling hook,
            used by ``benchmarks/step.py``).
    """
    run = build_run(cfg)
    accelerator, model, optimizer = run.accelerator, run.model, run.optimizer
    method, encoder = run.pretrainer.method, run.pretrainer.encoder  # unwrapped once
    accumulate = run.accumulate_steps  # micro-batches per optimiser step
    diagnostics = TrainingDiagnostics(every=cfg.log.diagnostics_every,
                                      prior=run.priors.first_on("tokens_proj"),
                                      warn=accelerator.print)
    show_progress = accelerator.is_main_process and cfg.log.progress
    bar = progress_bar(total=run.stop_step, initial=run.start_step, desc=cfg.name,
                       enable=show_progress)
    step, skipped_steps, last_eval_step = run.start_step, 0, -1
    last_ckpt_step = step if run.resumed else -1
    keep_steps = frozenset(cfg.trainer.keep_steps)
    if step == 0 and not run.resumed and 0 in keep_steps:  # the initial weights
        checkpoint(run, 0)
        last_ckpt_step = 0
    train_started = time.perf_counter()
    model.train()
    with StopSignals(say=accelerator.print) as stop:  # Ctrl-C: finish the step, checkpoint
        while step < run.stop_step:
            epoch = step // run.steps_per_epoch
            for micro, (views, labels) in _epoch_batches(run, epoch=epoch, step=step):
                draw = draw_index(step, micro, accumulate)  # seeds views, masks, directions
                views = _view_groups(run, views, step=draw)
                if micro == 0:  # the first micro-batch of an optimiser step
                    lr, parts = optimizer.param_groups[0]["lr"], []
                    optimizer.zero_grad(set_to_none=True)
                last = micro == accumulate - 1
                with gradient_sync(accelerator, model, last=last):  # all-reduced on the last
                    with accelerator.autocast():
                        result, logits = model(views, step=draw)
                    terms = run.priors(result.terms, result.outputs, step=draw)  # method + priors
                    terms["probe_loss"] = probe_loss(logits, labels)
                    # / K: the K micro-batches' gradients add up to their mean's
                    accelerator.backward((terms["loss"] + terms["probe_loss"]) / accumulate)
                parts.append(terms)
                if not last:
                    continue
                terms = mean_terms(parts)  # the step's terms: the mean over its micro-batches
                terms["grad_norm"] = gradient_norm(run)  # clipped first with optim.grad_clip
                bad = nonfinite_terms(run, terms)  # before the update: a NaN never reaches weights
                if bad and cfg.trainer.on_nonfinite == "stop":
                    bar.close()
                    raise stop_nonfinite(run, terms, bad, lr, step=step + 1, epoch=epoch)
                if bad:  # skip: this step's update is dropped, the schedule and data move on
                    skipped_steps += 1
                    optimizer.zero_grad(set_to_none=True)
                    accelerator.print(f"step {step + 1}: non-finite {', '.join(bad)}; update "
                                      f"skipped ({skipped_steps} so far)")
                else:
                    optimizer.step()
                run.scheduler.step()
                step += 1
                method.after_step(encoder, step=step, total_steps=run.total_steps)
                if on_step is not None:
                    on_step(step)
                if step % cfg.log.every == 0 or step == run.stop_step:
                    extra = {"train/skipped_steps": float(skipped_steps)} if skipped_steps else {}
                    extra.update(skipped_files_metric(run.splits.train, device=accelerator.device))
                    show_terms(bar, log_step(run, terms, lr, step=step, epoch=epoch, extra=extra))
                if diagnostics.due(step):  # on this batch's outputs, at the step they were made
                    run.runlog.log(diagnostics(result.outputs, step=draw, reduce=run.mean),
                                   step=step, epoch=epoch)
                bar.update(1)
                if step in keep_steps or (cfg.trainer.checkpoint_every
                                          and step % cfg.trainer.checkpoint_every == 0):
                    checkpoint(run, step)
                    last_ckpt_step = step
                if step % run.steps_per_epoch:  # mid-epoch (at its end: after the evaluation)
                    stop.raise_if_signalled(run, bar, step=step, checkpointed=last_ckpt_step)
                if step >= run.stop_step:
                    break
            if step % run.steps_per_epoch == 0:  # the epoch is complete
                epochs_done = step // run.steps_per_epoch
                if (run.test_loader is not None and cfg.trainer.eval_every
                        and epochs_done % cfg.trainer.eval_every == 0):
                    run.runlog.log({"test/acc": evaluate(run, progress=show_progress)}, step=step,
                                   epoch=epochs_done)
                    last_eval_step = step
                if cfg.trainer.checkpoint_every is None and last_ckpt_step != step:
                    checkpoint(run, step)
                    last_ckpt_step = step
                stop.raise_if_signalled(run, bar, step=step, checkpointed=last_ckpt_step)
    train_time = time.perf_counter() - train_started
    bar.close()
    if run.test_loader is not None and last_eval_step != step:
        run.runlog.log({"test/acc": evaluate(run, progress=show_progress)}, step=step,
                       epoch=step // run.steps_per_epoch)
    if last_ckpt_step != step:
        checkpoint(run, step)
    return finish_run(run, step=step, train_time=train_time, skipped_steps=skipped_steps)


def checkpoint(run: Run, step: int) -> None:
    """Save the run's state at ``step`` (atomically; :mod:`levyjepa.training.checkpoint`),
    marked kept when ``trainer.keep_steps`` lists the step; no listed step's checkpoint is
    pruned."""
    checkpoints.save_checkpoint(run.accelerator, run.run_dir,
                                {"step": step, "epoch": step // run.steps_per_epoch,
                                 "steps_per_epoch": run.steps_per_epoch},
                                keep=run.cfg.trainer.keep_checkpoints,
                                keep_steps=tuple(run.cfg.trainer.keep_steps),
                                model=run.model, optimizer=run.optimizer)


def _epoch_batches(run: Run, *, epoch: int, step: int) -> Iterator[tuple[int, Any]]:
    """``(micro, batch)`` of the training loader for ``epoch``, from the batch ``step`` stands
    at (after a resume); ``micro`` is the batch's place in its optimiser step (0 without
    accumulation), and a tail of fewer than ``optim.accumulate_steps`` batches is not read.

    Accelerate's loaders count epochs themselves and push their count to the sampler (and, in
    some layouts, the dataset) when iterated: set it, so order and views follow ``epoch``.
    """
    accumulate = run.accumulate_steps
    done_in_epoch = (step - epoch * run.steps_per_epoch) * accumulate  # micro-batches
    loader = (run.accelerator.skip_first_batches(run.train_loader, done_in_epoch)
              if done_in_epoch else run.train_loader)
    loader.set_epoch(epoch)
    run.sampler.set_epoch(epoch)
    if hasattr(run.splits.train, "set_epoch"):
        run.splits.train.set_epoch(epoch)
    wanted = run.steps_per_epoch * accumulate - done_in_epoch
    batches = loader if wanted == len(run.train_loader) - done_in_epoch else islice(loader, wanted)
    return ((i % accumulate, batch) for i, batch in enumerate(batches))


def _view_groups(run: Run, views: Any, *, step: int) -> list[torch.Tensor]:
    """A batch's views as a list of groups ``(N, V_g, ...)`` (global first), made on the
    device when the recipe says so (uint8 images ``(N, C, H, W)`` in)."""
    if run.device_views is not None:
        views = run.device_views(views, step=step, rank=run.accelerator.process_index)
    groups = list(views) if isinstance(views, (list, tuple)) else [views]
    if run.cfg.trainer.channels_last:
        groups = [channels_last_views(g) for g in groups]
    return groups
