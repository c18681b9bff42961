"""Train each method recipe on several seeds and tabulate what the training added.

For every recipe and seed the run's first look (``log.first_look``) evaluates the trained
encoder and the untrained encoder of the same recipe and seed (offline linear probe and k-NN,
``eval.json`` and ``eval_untrained.json``); this script prints, per recipe, the steps, the wall
time, both accuracies with their mean and 95% t-interval over seeds, and the paired difference
trained - untrained with its own interval and verdict (``no detectable difference`` when the
interval contains 0) and the smallest gain that many seeds detect with 80% power at the 5% level,
given the measured spread of the per-seed gains
(:func:`levyjepa.studies.power.smallest_detectable_difference`)::

    python benchmarks/methods.py --seeds 0 1 2 --out runs/methods \\
        recipes/methods/lejepa_multicrop.yaml recipes/methods/vicreg.yaml
    python benchmarks/methods.py --seeds 0 --out /tmp/m recipes/quickstart.yaml trainer.max_steps=4

Finished runs (an ``eval_untrained.json`` in their directory) are not trained again, so the
command resumes a long sweep; delete a run's directory to redo it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from levyjepa.studies.power import smallest_detectable_difference
from levyjepa.studies.stats import paired_difference, t_interval, verdict


def run_one(recipe: Path, seed: int, out: Path, overrides: list[str]) -> dict:
    """Train ``recipe`` at ``seed`` into ``out`` (unless done) and read its numbers."""
    if not (out / "eval_untrained.json").is_file():
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "levyjepa.run", str(recipe), *overrides,
                        f"seed={seed}", f"out_dir={out}", "overwrite=true", "log.progress=false",
                        "log.first_look=true"], check=True)  # these win over the overrides
        (out / "wall_s.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    summary = json.loads((out / "summary.json").read_text())
    trained = json.loads((out / "eval.json").read_text())
    untrained = json.loads((out / "eval_untrained.json").read_text())
    wall = out / "wall_s.txt"
    return {"steps": summary["steps"], "train_s": summary["train_time_s"],
            "wall_s": float(wall.read_text()) if wall.is_file() else float("nan"),
            "linear": trained["linear"]["top1"], "knn": trained["knn"]["top1"],
            "linear_untrained": untrained["linear"]["top1"],
            "knn_untrained": untrained["knn"]["top1"], "online": summary["final"].get("test/acc")}


def interval(values: list[float]) -> str:
    i = t_interval(values)
    return f"{i.mean:.3f} [{i.low:.3f}, {i.high:.3f}]" if i.defined else f"{i.mean:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+", help="recipe files, then key=value overrides")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/methods"))
    args = parser.parse_args(argv)
    recipes = [Path(r) for r in args.recipes if "=" not in r]
    overrides = [r for r in args.recipes if "=" in r]
    print("| recipe | seeds | steps | wall s (mean) | linear, trained | linear, untrained | "
          "linear gain (paired) | k-NN, trained | k-NN, untrained | k-NN gain (paired) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for recipe in recipes:
        rows = [run_one(recipe, s, args.out / f"{recipe.stem}-s{s}", overrides)
                for s in args.seeds]
        cells = []
        for key in ("linear", "knn"):
            trained = [r[key] for r in rows]
            untrained = [r[f"{key}_untrained"] for r in rows]
            diffs, gain = paired_difference(untrained, trained)
            per_seed = " / ".join(f"{d:+.3f}" for d in diffs)
            detects = ""
            if len(diffs) > 1 and statistics.stdev(diffs) > 0:
                mde = smallest_detectable_difference(statistics.stdev(diffs), len(diffs))
                detects = f"; detects {mde:.3f} or more"
            cells += [interval(trained), interval(untrained),
                      f"{per_seed}: {verdict(gain, name_b='trained')}{detects}"]
        wall = sum(r["wall_s"] for r in rows) / len(rows)
        print(f"| {recipe.stem} | {' '.join(map(str, args.seeds))} | {rows[0]['steps']} | "
              f"{wall:.0f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
