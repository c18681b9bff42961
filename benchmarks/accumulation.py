"""Gradient accumulation against one batch: a recipe's first step at ``optim.accumulate_steps``
K = 1, 2, 4, ... with micro-batches of ``batch / K`` (the same effective batch, the same initial
weights, the same samples).

Usage::

    python benchmarks/accumulation.py [key=value ...] [--recipe recipes/quickstart.yaml]
                                      [--batch 128] [--ks 1 2 4] [--train-size 256]

Prints the logged terms of step 1 (``train/loss``, each method and prior term, ``grad_norm``)
for every K and their change from K = 1. For a loss that is a mean over samples the rows agree
to rounding; a statistic of the batch (SIGReg's empirical characteristic function, VICReg's
variance and covariance, BatchNorm) is computed per micro-batch and moves (docs/recipes.md,
"Gradient accumulation"). Runs are written to a temporary folder and removed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from levyjepa.config.recipe import load_recipe
from levyjepa.training.loop import train

ROOT = Path(__file__).resolve().parents[1]


def first_step(recipe: Path, overrides: list[str], *, out: Path, batch: int, k: int,
               train_size: int) -> dict[str, float]:
    """The logged ``train/*`` terms of step 1 at ``accumulate_steps=k``."""
    run = out / f"k{k}"
    train(load_recipe(recipe, [
        *overrides, f"out_dir={run}", f"data.train_size={train_size}", "data.test_size=8",
        "data.workers=0", f"data.batch_size={batch // k}", f"optim.accumulate_steps={k}",
        "trainer.max_steps=1", "trainer.eval_every=0", "log.every=1", "log.progress=false",
        "log.pictures=false", "log.first_look=false", "log.diagnostics_every=0",
        "log.trackers=[]"]))
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    step = next(e for e in events if "train/loss" in e)
    return {k: v for k, v in step.items() if k.startswith("train/") and k != "train/lr"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "quickstart.yaml"))
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--batch", type=int, default=128, help="effective batch")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--train-size", type=int, default=256)
    args = parser.parse_args()
    if any(args.batch % k for k in args.ks):
        parser.error(f"--batch {args.batch} must be divisible by every K in --ks {args.ks}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = {k: first_step(Path(args.recipe), args.overrides, out=Path(tmp), batch=args.batch,
                              k=k, train_size=args.train_size) for k in args.ks}
    base = rows[args.ks[0]]
    print("| term | " + " | ".join(f"K={k} ({args.batch // k} x {k})" for k in args.ks) + " |")
    print("|---" * (len(args.ks) + 1) + "|")
    for name, ref in base.items():
        cells = [f"{rows[k][name]:.4g}" + (f" ({(rows[k][name] - ref) / ref:+.1%})"
                                           if k != args.ks[0] and ref else "")
                 for k in args.ks]
        print(f"| `{name}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
