"""Checkpoints: Accelerate ``save_state`` folders, renamed into place when complete.

Layout inside a run directory::

    checkpoints/step_00000120/   model, optimizer, scheduler, RNG states (Accelerate) and
                                 trainer_state.json (step, epoch, position in the epoch)

A checkpoint is first written to ``checkpoints/.partial-step_...`` and renamed when every
process has finished writing, so the latest complete ``step_*`` folder is always loadable;
partial folders left by a crash are ignored and cleaned up by the next save. A state with a
non-finite weight or optimiser moment is never written
(:func:`levyjepa.training.nonfinite.check_finite_state`).

Only the ``keep`` most recent checkpoints are kept, except the *kept* ones: a checkpoint of a
step listed in ``trainer.keep_steps`` is marked ``"kept": true`` in its ``trainer_state.json``
and never pruned, whoever writes the next checkpoint (``step_00000000``: the initial weights,
written before the first step when 0 is listed). ``resume=auto`` still continues from the
latest checkpoint, kept or not.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import save_file

from levyjepa.core.atomic import atomic_write_json, fsync_tree
from levyjepa.core.errors import ConfigError
from levyjepa.training.nonfinite import check_finite_state
from levyjepa.training.sharding import is_sharded

STATE_FILE = "trainer_state.json"
MODEL_FILE = "model.safetensors"  # the model's weights (Accelerate's name; whole under FSDP too)
PREFIX = "step_"
PARTIAL = ".partial-"


def checkpoint_dir(run_dir: Path) -> Path:
    """The folder holding a run's checkpoints."""
    return run_dir / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir()
             if p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint folder ``step_NNNNNNNN``."""
    return int(path.name[len(PREFIX):])


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` is (or would be) in ``run_dir``."""
    return checkpoint_dir(run_dir) / f"{PREFIX}{step:08d}"


def is_kept(path: Path, keep_steps: Collection[int] = ()) -> bool:
    """Whether a checkpoint is never pruned: marked kept, or its step is in ``keep_steps``."""
    if checkpoint_step(path) in keep_steps:
        return True
    try:
        return bool(json.loads((path / STATE_FILE).read_text()).get("kept", False))
    except (OSError, ValueError):  # removed meanwhile, or unreadable: an ordinary checkpoint
        return False


def save_checkpoint(
    accelerator: Accelerator, run_dir: Path, state: dict[str, Any], *, keep: int,
    keep_steps: Collection[int] = (), model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Save the full training state atomically; call on every process.

    Args:
        accelerator: The run's accelerator (models, optimizer and scheduler are registered by
            ``prepare``).
        run_dir: Run directory.
        state: Trainer state to store beside it; must hold ``step``.
        keep: Number of most recent checkpoints to keep, kept checkpoints not counted.
        keep_steps: Steps whose checkpoints are kept (``trainer.keep_steps``): this one is
            marked kept when its step is listed, and none of them is pruned.
        model: The trained model, checked to be finite (with ``optimizer``) before writing.
        optimizer: Its optimiser.

    Raises:
        NonFiniteError: if a weight or an optimiser state is not finite (nothing is written).

    Returns:
        The checkpoint folder.
    """
    if model is not None and optimizer is not None:  # never store NaNs: every resume loads them
        check_finite_state(accelerator.unwrap_model(model), optimizer)
    if state["step"] in keep_steps:
        state = {**state, "kept": True}
    folder = checkpoint_dir(run_dir)
    final = checkpoint_path(run_dir, state["step"])
    partial = folder / f"{PARTIAL}{final.name}"
    if accelerator.is_main_process:
        for stale in folder.glob(f"{PARTIAL}*"):
            shutil.rmtree(stale)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    if model is not None and is_sharded(model):  # the whole model, for evaluation and export
        whole = accelerator.get_state_dict(model)  # a collective; filled on the main process
        if accelerator.is_main_process:
            save_file({k: v.contiguous() for k, v in whole.items()}, str(partial / MODEL_FILE))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(partial / STATE_FILE, state)
        fsync_tree(partial)
        if final.exists():  # the same step saved again (e.g. after a resume): replace it
            shutil.rmtree(final)
        os.replace(partial, final)
        prunable = [p for p in list_checkpoints(run_dir) if not is_kept(p, keep_steps)]
        for old in prunable[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def resolve_resume(resume: str | None, run_dir: Path) -> Path | None:
    """The checkpoint a run resumes from.

    Args:
        resume: ``None`` (start fresh), ``"auto"`` (latest checkpoint in ``run_dir``, if any)
            or a path to a checkpoint folder or to a run directory (its latest checkpoint).
        run_dir: This run's directory.

    Raises:
        ConfigError: if an explicit path holds no complete checkpoint.
    """
    if resume is None:
        return None
    if resume == "auto":
        found = list_checkpoints(run_dir)
        return found[-1] if found else None
    path = Path(resume)
    if (path / STATE_FILE).is_file():
        return path
    found = list_checkpoints(path)
    if found:
        return found[-1]
    raise ConfigError(f"resume: no complete checkpoint at '{resume}' (expected a folder with "
                      f"{STATE_FILE}, or a run directory with checkpoints/{PREFIX}*)")


def load_checkpoint(accelerator: Accelerator, path: Path) -> dict[str, Any]:
    """Restore the training state saved by :func:`save_checkpoint`; returns the trainer state."""
    accelerator.load_state(str(path))
    return json.loads((path / STATE_FILE).read_text())
