"""A first look at a finished run, in words a newcomer reads (``log.first_look: true``).

At the end of training (the quickstart turns it on) ``python -m levyjepa.run`` prints, from the
main process, and writes to ``RUN_DIR/first_look.txt`` (:func:`first_look_of_run`):

* the online probe's final ``test/acc`` against chance, with a note when it lies below chance
  or the run is shorter than one epoch (:mod:`levyjepa.training.probe_note`);
* the offline linear probe and k-NN (:mod:`levyjepa.eval`) of the trained encoder next to the
  same protocol on the *untrained* encoder of the same recipe (its initial weights): what the
  training added;
* ``within`` (the Lévy prior's statistic on the token field) at the first and the last logged
  step, next to its **null level**: the value the statistic takes on fields drawn from the prior
  itself (:func:`within_null_level`), i.e. what a perfect fit would score on this grid;
* where the pictures are (CF fit, increment histogram, token field).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch

from levyjepa.core.atomic import atomic_write_text
from levyjepa.priors.levy_sheet import LevySheetPrior
from levyjepa.priors.sheet_sampler import sample_levy_sheet
from levyjepa.training.probe_note import NEEDS_STEPS, probe_trouble
from levyjepa.training.trained import load_trained

FIRST_LOOK_FILE = "first_look.txt"


@torch.no_grad()
def within_null_level(prior: LevySheetPrior, grid: tuple[int, ...], channels: int, *,
                      fields: int = 256, seed: int = 0) -> Optional[float]:
    """Mean ``within`` over Lévy-sheet fields drawn from the prior's own law.

    Each orientation family is scored on sheets of its own orientation (no grid field is a
    sheet for both), so the value is the mean over families of ``E[EP_f]`` under the null.
    ``None`` for priors that do not expose ``sigma``, ``lam`` and a jump ``law`` (plugins).

    Args:
        prior: A Lévy-sheet prior (``levy2d``, ``levy3d``).
        grid: The token grid ``(H', W')`` or ``(T', H', W')``.
        channels: ``K``, the width of ``tokens_proj``.
        fields: Number of fields drawn per family.
        seed: Seed of the draw (and of the prior's channel rotation).
    """
    if not all(hasattr(prior, a) for a in ("sigma", "lam", "law")):
        return None
    generator = torch.Generator().manual_seed(seed)
    time_scale = float(getattr(prior, "time_scale", 1.0)) if len(grid) == 3 else 1.0
    per_family = []
    for f, family in enumerate(prior.families):
        sheet = sample_levy_sheet((fields, *grid), channels, sigma=prior.sigma, lam=prior.lam,
                                  jumps=prior.law, time_scale=time_scale,
                                  orientation=family.name, generator=generator)
        per_family.append(float(prior.statistics(sheet, step=seed)[f].mean()))
    return sum(per_family) / len(per_family)


def first_look(run_dir: Path, *, prior: Optional[LevySheetPrior], grid: Optional[tuple[int, ...]],
               channels: int, progress: bool = True, say: Any = print) -> str:
    """Evaluate the trained and the untrained encoder of a finished run and describe the run.

    Args:
        run_dir: The finished run's directory (``summary.json``, ``metrics.jsonl``, a checkpoint).
        prior: The run's Lévy prior (the first prior on ``tokens_proj``, ``priors.within``
            in the recipes), or ``None``.
        grid: The encoder's token grid, for the null level.
        channels: Width of ``tokens_proj``.
        progress: Progress bars while features are extracted.
        say: Where the text goes.

    Returns:
        The text (also written to ``RUN_DIR/first_look.txt``).
    """
    from levyjepa.eval import EvalConfig, evaluate_run

    summary = json.loads((run_dir / "summary.json").read_text())
    events = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    quiet = dict(pictures=False, progress=progress)
    trained = evaluate_run(run_dir, EvalConfig(**quiet))
    untrained = evaluate_run(run_dir, EvalConfig(untrained=True, **quiet))
    classes = trained["classes"]
    lines = [f"What this run shows ({run_dir}):"]
    acc = summary["final"].get("test/acc")
    if acc is not None:
        lines.append(f"  online probe test/acc {acc:.3f} after {summary['steps']} steps "
                     f"(chance {1 / classes:.3f} for {classes} classes)")
        steps, epochs = summary["steps"], summary.get("epochs") or 0
        trouble = probe_trouble(acc, classes=classes, steps=steps,
                                steps_per_epoch=round(steps / epochs) if epochs else 0)
        if trouble is not None:  # the offline probes just below are the numbers to read
            lines.append(f"    note: {trouble}: {NEEDS_STEPS}; trust the offline probes below")
    lines += [
        "  frozen encoder, offline:       trained   untrained (same recipe, initial weights)",
        f"    linear probe top-1           {trained['linear']['top1']:.3f}     "
        f"{untrained['linear']['top1']:.3f}",
        f"    k-NN top-1 (k={trained['knn']['k']})            {trained['knn']['top1']:.3f}     "
        f"{untrained['knn']['top1']:.3f}",
    ]
    within = [(e["step"], e["train/within"]) for e in events if "train/within" in e]
    if within and prior is not None and grid is not None:
        null = within_null_level(prior, grid, channels)
        null_text = (f"; {null:.4f} on fields drawn from the prior itself (a perfect fit)"
                     if null is not None else "")
        lines.append(f"  within (Lévy prior on the token field, lower is closer): "
                     f"{within[0][1]:.4f} at step {within[0][0]} -> {within[-1][1]:.4f} at step "
                     f"{within[-1][0]}{null_text}")
    pictures = sorted((run_dir / "pictures").glob(f"step_{summary['steps']:08d}_*.png"))
    if pictures:
        lines.append("  pictures: " + ", ".join(str(p) for p in pictures))
        lines.append("    *_cf.png: the token increments' characteristic function against the "
                     "prior's; *_increments.png: their histogram against the prior's density; "
                     "*_token_field.png: inputs beside their token fields; *_attention.png: "
                     "where the pooling head and the last block attend")
    text = "\n".join(lines)
    atomic_write_text(run_dir / FIRST_LOOK_FILE, text + "\n")
    say(text)
    return text


def first_look_of_run(run_dir: Path, *, progress: bool = True, say: Any = print) -> str:
    """:func:`first_look` with the prior, the token grid and the projector's width read from the
    run itself (its recipe, rebuilt by :func:`levyjepa.training.trained.load_trained`)."""
    run = load_trained(run_dir, untrained=True)  # the shapes only: no checkpoint read
    prior = run.prior if isinstance(run.prior, LevySheetPrior) else None
    return first_look(Path(run_dir), prior=prior, grid=getattr(run.encoder, "grid", None),
                      channels=getattr(run.encoder, "proj_dim", 0), progress=progress, say=say)
