"""The run directory's policy: start, continue or overwrite, never silently mix two runs.

:func:`plan_run_dir` decides what a run does with its ``out_dir`` before anything is built or
written, so every refusal is one line and leaves the folder as it was:

* a fresh ``out_dir`` (missing or empty of run files) starts a run;
* an ``out_dir`` that already holds a run (``config.yaml``, ``metrics.jsonl``,
  ``summary.json`` or ``checkpoints/``) is refused unless ``resume=auto|PATH`` (continue) or
  ``overwrite=true`` (the old run's files are removed, once the new run has been built);
* but a run that failed before its first step (no complete checkpoint, no logged metrics: a
  bad data folder, an interrupted start) is no run: its folder is reused, said in one line;
* ``resume=auto`` without a complete checkpoint starts fresh and says so in one line;
* resuming compares the recipe with the one the checkpoint's run saved and refuses, listing
  the keys that differ, unless they are in :data:`MAY_CHANGE_ON_RESUME` (keys that change how a
  run is observed or executed, never what it computes) or listed on purpose in
  ``resume_changes`` (for example a lower learning rate after a divergence), which are printed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from levyjepa.config.moved_keys import refuse_moved_keys
from levyjepa.config.schema import Recipe
from levyjepa.core.errors import ConfigError
from levyjepa.training.checkpoint import list_checkpoints, resolve_resume

RUN_MARKERS = ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints")
"""Entries whose presence means a folder holds a run."""

RUN_FILES = (*RUN_MARKERS, "eval.json", "eval_untrained.json", "first_look.txt", "pictures",
             "tensorboard", "wandb", "report.md", "plugins.json", "eval")
"""Everything a run (and ``levyjepa.eval`` / ``report``) writes; ``overwrite=true`` removes
these, the files of :data:`RUN_FILE_PATTERNS` and nothing else."""

RUN_FILE_PATTERNS = ("eval_step_*.json",)
"""Files of a run named by pattern: the evaluations of its kept checkpoints that
``python -m levyjepa.study --eval-at`` writes (:mod:`levyjepa.studies.curves`)."""

MAY_CHANGE_ON_RESUME = (
    "name", "out_dir", "resume", "overwrite", "resume_changes",
    "trainer.max_steps", "trainer.eval_every", "trainer.checkpoint_every",
    "trainer.keep_checkpoints", "trainer.keep_steps", "trainer.cpu_threads", "trainer.compile",
    "trainer.pin_memory", "trainer.persistent_workers", "trainer.on_nonfinite",
    "data.workers", "data.cache",
    "encoder.pretrained", "encoder.pretrained_strict",  # read at step 0 only, never on resume
    "log.",  # every logging key: cadence, trackers, progress bar, pictures, diagnostics
)
"""Recipe keys a resumed run may change (a trailing dot: the whole section). Everything else,
``trainer.epochs`` included (it sets the learning-rate schedule), must equal the saved recipe's,
so that a resumed run is the run it continues."""


@dataclass(frozen=True)
class RunDirPlan:
    """What :func:`plan_run_dir` decided.

    Attributes:
        resume_from: The checkpoint to load, or ``None`` for a fresh start.
        clear: Remove the old run's files (``overwrite=true``) before writing.
    """

    resume_from: Optional[Path]
    clear: bool


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` already holds a run's files."""
    return run_dir.is_dir() and any((run_dir / name).exists() for name in RUN_MARKERS)


def never_stepped(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` ended before its first step: no complete checkpoint and
    no metrics line (a run stopped at step 1 by a non-finite loss has logged that step)."""
    metrics = run_dir / "metrics.jsonl"
    logged = metrics.is_file() and metrics.stat().st_size > 0
    return not logged and not list_checkpoints(run_dir)


def plan_run_dir(cfg: DictConfig, run_dir: Path, *, say: Callable[[str], None] = print
                 ) -> RunDirPlan:
    """Decide how the run uses ``run_dir``; reads the file system, writes nothing.

    Args:
        cfg: The run's recipe.
        run_dir: Its ``out_dir``.
        say: Where the one-line notices go (the main process's ``print``).

    Raises:
        ConfigError: ``out_dir`` is a file, already holds a run that the recipe neither
            resumes nor overwrites, or the recipe differs from the resumed run's.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"out_dir: '{run_dir}' exists and is not a directory; choose a "
                          "folder for the run")
    resume_from = resolve_resume(cfg.resume, run_dir)
    if cfg.resume == "auto" and resume_from is None:
        say(f"resume=auto: no complete checkpoint in {run_dir}; starting a fresh run")
    if resume_from is not None:
        changed = check_same_recipe(cfg, resume_from)
        if changed:
            say(f"resume: changed on purpose (resume_changes): {changed}")
        return RunDirPlan(resume_from=resume_from, clear=False)
    if holds_run(run_dir) and never_stepped(run_dir):
        say(f"out_dir: '{run_dir}' holds a run that stopped before saving anything (no "
            "checkpoint, no logged step): starting there afresh")
        return RunDirPlan(resume_from=None, clear=True)
    if holds_run(run_dir) and cfg.resume != "auto" and not cfg.overwrite:
        found = ", ".join(n for n in RUN_MARKERS if (run_dir / n).exists())
        raise ConfigError(f"out_dir: '{run_dir}' already holds a run ({found}); continue it "
                          "with resume=auto, start it over with overwrite=true, or choose "
                          "another out_dir")
    return RunDirPlan(resume_from=None, clear=holds_run(run_dir))


def clear_run_dir(run_dir: Path) -> None:
    """Remove an old run's files (:data:`RUN_FILES`, :data:`RUN_FILE_PATTERNS`) from
    ``run_dir``; other files stay."""
    patterned = [p.name for pattern in RUN_FILE_PATTERNS for p in run_dir.glob(pattern)]
    for name in [*RUN_FILES, *patterned]:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def saved_recipe_of(checkpoint: Path) -> Optional[Path]:
    """The ``config.yaml`` of the run a checkpoint belongs to (``RUN/checkpoints/step_*``)."""
    path = checkpoint.parent.parent / "config.yaml"
    return path if path.is_file() else None


def check_same_recipe(cfg: DictConfig, checkpoint: Path) -> str:
    """Refuse to resume ``checkpoint`` with a recipe that computes something else.

    Returns:
        The differences that ``cfg.resume_changes`` allows, as text (empty if none).

    Raises:
        ConfigError: listing every differing key outside :data:`MAY_CHANGE_ON_RESUME`.
    """
    saved_path = saved_recipe_of(checkpoint)
    if saved_path is None:
        raise ConfigError(f"resume: '{checkpoint}' has no config.yaml in its run directory "
                          f"('{checkpoint.parent.parent}'), so the recipe cannot be checked")
    saved_tree = OmegaConf.load(saved_path)
    # a run written before a key moved (the objective before the method seam) cannot continue
    # under today's recipe: one line, not a list of every moved key
    refuse_moved_keys(saved_tree, origin=f"resume: {saved_path} was written by an earlier "
                      "levyjepa and cannot be resumed (start a new out_dir); its key")
    # a typed key added since the run was saved (optim.accumulate_steps) ran as its default
    saved = {**_typed_defaults(), **flatten_recipe(OmegaConf.to_container(saved_tree))}
    now = flatten_recipe(OmegaConf.to_container(cfg))
    differ = sorted(k for k in set(saved) | set(now)
                    if saved.get(k, _MISSING) != now.get(k, _MISSING) and not _may_change(k))
    on_purpose = [k for k in differ if _listed(k, list(cfg.resume_changes))]
    refused = [k for k in differ if k not in on_purpose]

    def show(keys: list[str]) -> str:
        return "; ".join(f"{k}: {_show(saved.get(k, _MISSING))} -> {_show(now.get(k, _MISSING))}"
                         for k in keys)

    if refused:
        allowed = ", ".join(k + "*" if k.endswith(".") else k for k in MAY_CHANGE_ON_RESUME)
        raise ConfigError(
            f"resume: the recipe differs from the one the run was started with ({saved_path}) "
            f"in {len(refused)} key(s): {show(refused)}; resuming may change only {allowed}, "
            f"or what resume_changes lists (resume_changes=[{','.join(refused)}] to change "
            "these on purpose)"
        )
    return show(on_purpose)


_MISSING = object()

TYPED_SECTIONS = ("optim", "trainer", "log")
"""The recipe's typed sections (:mod:`levyjepa.config.schema`): every key has a default."""


def _typed_defaults() -> dict[str, Any]:
    """``{"optim.fused": True, ...}``: the default of every key of the typed sections."""
    tree = OmegaConf.to_container(OmegaConf.structured(Recipe))
    assert isinstance(tree, dict)
    return flatten_recipe({section: tree[section] for section in TYPED_SECTIONS})


def _may_change(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in MAY_CHANGE_ON_RESUME)


def _listed(key: str, keys: list[str]) -> bool:
    """``key`` is one of ``keys`` or inside one of them (``optim`` covers ``optim.fused``)."""
    return any(key == k or key.startswith(k.rstrip(".") + ".") for k in keys)


def _show(value: Any) -> str:
    return "(absent)" if value is _MISSING else repr(value)


def flatten_recipe(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested recipe to ``{"a.b": value}`` (lists are leaves)."""
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten_recipe(value, f"{prefix}{key}."))
        return flat or {prefix[:-1]: {}}
    return {prefix[:-1]: tree}
