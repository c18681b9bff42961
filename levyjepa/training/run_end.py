"""What the training loop does besides stepping: log a step, evaluate the online probe,
checkpoint, stop on a non-finite value, and finish the run (summary, pictures, first look)."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Optional

import torch
import torch.nn.functional as F

from levyjepa.core.atomic import atomic_write_json
from levyjepa.core.progress import progress_bar
from levyjepa.training.checkpoint import list_checkpoints, save_checkpoint
from levyjepa.training.nonfinite import (
    NonFiniteError,
    finite_flags,
    grad_total_norm,
    nonfinite_names,
)
from levyjepa.training.runlog import RunLog
from levyjepa.training.setup import Run
from levyjepa.training.sharding import full_parameters


def probe_loss(logits: Optional[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the online probe on every view that gave an embedding (``-1``: no
    label); zero without a probe."""
    if logits is None:
        return torch.zeros((), device=labels.device)
    targets = labels.repeat_interleave(logits.shape[0] // labels.shape[0])
    return F.cross_entropy(logits.float(), targets, ignore_index=-1)


def gradient_norm(run: Run) -> torch.Tensor:
    """The 2-norm of all gradients, after clipping them to ``optim.grad_clip`` when it is set
    (the norm before clipping is returned either way)."""
    params = run.model.parameters()
    clip = run.cfg.optim.grad_clip
    norm = run.accelerator.clip_grad_norm_(params, clip) if clip else grad_total_norm(params)
    return norm.to(run.accelerator.device)


def nonfinite_terms(run: Run, terms: dict[str, torch.Tensor]) -> list[str]:
    """The ``train/<name>`` of every non-finite term (gradients included), agreed by all
    processes with one reduction, so that all of them skip or stop together."""
    flags = finite_flags(terms)
    if run.accelerator.num_processes > 1:
        flags = run.mean(flags)
    return nonfinite_names(terms, flags.tolist())


def show_terms(bar: Any, metrics: dict[str, float]) -> None:
    """The logged terms on the progress bar (without ``lr`` and ``grad_norm``)."""
    bar.set_postfix({k[6:]: f"{v:.4g}" for k, v in metrics.items()
                     if k.startswith("train/") and k not in ("train/lr", "train/grad_norm")})


def log_step(run: Run, terms: dict[str, torch.Tensor], lr: float, *, step: int, epoch: int,
             extra: Optional[dict[str, float]] = None) -> dict[str, float]:
    """Log every term as ``train/<name>`` (averaged over processes, one reduction), the
    learning rate and ``extra``; returns the logged metrics."""
    names = list(terms)
    values = torch.stack([terms[k].detach().float().reshape(()) for k in names])
    values = run.accelerator.reduce(values, reduction="mean").tolist()
    metrics = {f"train/{k}": v for k, v in zip(names, values)}
    metrics["train/lr"] = lr
    metrics.update(extra or {})
    run.runlog.log(metrics, step=step, epoch=epoch)
    return metrics


def evaluate(run: Run, *, progress: bool) -> float:
    """Online-probe accuracy on the test split (one un-augmented view per image)."""
    model, accelerator = run.model, run.accelerator
    model.eval()
    correct = seen = 0
    # FSDP: the probe runs outside model.forward, so the model's own parameters are gathered
    # once for the whole split (its blocks gather theirs in their forward, as in training)
    with torch.no_grad(), accelerator.autocast(), full_parameters(model):
        for images, labels in progress_bar(run.test_loader, desc="test/acc", transient=True,
                                           enable=progress):
            logits = run.pretrainer.test_logits(images)
            preds, labels = accelerator.gather_for_metrics((logits.argmax(-1), labels))
            correct += (preds == labels).sum().item()
            seen += labels.numel()
    model.train()
    return correct / max(1, seen)


def end_processes(accelerator: Any) -> None:
    """Close the trackers and the process group, once every process has got here: no process
    tears down its connections while another still exchanges data over them."""
    accelerator.wait_for_everyone()
    accelerator.end_training()


def checkpoint(run: Run, step: int) -> None:
    """Save the run's state at ``step`` (atomically; :mod:`levyjepa.training.checkpoint`)."""
    save_checkpoint(run.accelerator, run.run_dir,
                    {"step": step, "epoch": step // run.steps_per_epoch,
                     "steps_per_epoch": run.steps_per_epoch},
                    keep=run.cfg.trainer.keep_checkpoints, model=run.model,
                    optimizer=run.optimizer)


def stop_nonfinite(run: Run, terms: dict[str, torch.Tensor], bad: list[str], lr: float, *,
                   step: int, epoch: int) -> NonFiniteError:
    """Log the bad step, write the summary and end training; returns the error to raise."""
    log_step(run, terms, lr, step=step, epoch=epoch)
    found = list_checkpoints(run.run_dir)
    last = (f"the last good checkpoint is {found[-1].name}" if found
            else "no checkpoint was written yet")
    message = (f"step {step}: non-finite {', '.join(bad)}; stopped before the update; {last}; "
               "resume=auto continues from it (e.g. with a lower optim.net_lr_bs256 and "
               "resume_changes=[optim.net_lr_bs256]), or set trainer.on_nonfinite=skip")
    if run.accelerator.is_main_process:
        atomic_write_json(run.run_dir / "summary.json", {
            "recipe": run.cfg.name, "run_dir": str(run.run_dir), "steps": step - 1,
            "stopped": message, "final": run.runlog.last})
    end_processes(run.accelerator)
    return NonFiniteError(message)


def finish_run(run: Run, *, step: int, train_time: float, skipped_steps: int) -> dict[str, Any]:
    """Write pictures and ``summary.json``, end training, print the summary line and the
    first look; returns the summary."""
    cfg, accelerator, run_dir = run.cfg, run.accelerator, run.run_dir
    token_prior = run.priors.first_on("tokens_proj")
    # FSDP: every process gathers the whole model for the main process's pictures
    with full_parameters(run.model) if cfg.log.pictures else contextlib.nullcontext():
        if cfg.log.pictures and accelerator.is_main_process:
            from levyjepa.diagnostics.pictures import (
                write_pictures,  # matplotlib: imported only when drawing
            )

            pretrainer = run.pretrainer  # the encoder the method evaluates (I-JEPA: its teacher)
            write_pictures(pretrainer.method.evaluated_encoder(pretrainer.encoder), token_prior,
                           run.splits, run_dir, step=step, trackers=accelerator.trackers)
    views_per_step = run.batch_size * run.accumulate_steps * sum(
        count for count, _ in run.splits.view_groups)
    runlog: RunLog = run.runlog
    done = step - run.start_step
    summary = {
        "recipe": cfg.name,
        "method": cfg.method.name,
        "run_dir": str(run_dir),
        "steps": step,
        "epochs": step / run.steps_per_epoch,
        "steps_this_session": done,
        "world_size": accelerator.num_processes,
        "device": str(accelerator.device),
        "precision": run.precision,
        "wall_time_s": time.perf_counter() - run.started,
        "train_time_s": train_time,
        "views_per_s": done * views_per_step / train_time if train_time else 0.0,
        "skipped_steps": skipped_steps,
        "skipped_files": int(runlog.last.get("data/skipped_files", 0)),
        "final": runlog.last,
        "best": runlog.best,
    }
    if accelerator.is_main_process:
        atomic_write_json(run_dir / "summary.json", summary)
    end_processes(accelerator)
    acc = summary["final"].get("test/acc")
    skipped = summary["skipped_files"]  # each was reported on stderr when it was met
    accelerator.print(
        f"done: {step} steps in {summary['wall_time_s']:.1f} s, "
        f"{summary['views_per_s']:.1f} views/s"
        + (f", test/acc {acc:.4f}" if acc is not None and math.isfinite(acc) else "")
        + (f", {skipped} unreadable file{'s' if skipped != 1 else ''} skipped" if skipped else "")
        + f" -> {run_dir}"
    )
    from levyjepa.training.probe_note import (
        print_probe_note,  # below chance or a short run: say why
    )

    print_probe_note(run, acc=acc, step=step)
    return summary
