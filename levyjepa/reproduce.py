"""Reproduce the seed's four image runs (docs/seed_experiments.md) and compare them with its
results.

Usage::

    python -m levyjepa.reproduce [--out DIR] [--runs NAME,...] [--recipes DIR] [key=value ...]

The recipes ``image_baseline``, ``image_levy2d`` (experiment 1), ``image_noinv_baseline`` and
``image_noinv_levy2d`` (experiment 2) run one after the other, each with the same overrides, in
``DIR/<recipe>`` (default ``DIR = runs/reproduce``). A run whose ``summary.json`` exists and
that was made with the same ``trainer.epochs`` and ``trainer.max_steps`` is skipped; any other
continues from its latest checkpoint (``resume=auto``), so the same command resumes an
interrupted reproduction. After every run, ``DIR/results.md`` (the seed's table, its numbers
beside the measured ones, and the epochs run) and ``DIR/curves.png`` (``test/acc`` and
``train/within`` against the step for the four runs, ``within`` on a log scale) are rewritten
atomically. At the end, :func:`levyjepa.report.write_report` adds ``DIR/report.md`` (final and
best value of every logged metric per run, and the offline evaluation where ``eval.json``
exists) and its plots (``losses.png``, ``test_acc.png``, ``within.png``, ``diagnostics.png``).

Examples::

    # the documented setting on one GPU (Imagenette from the Hugging Face hub, 800 epochs each)
    python -m levyjepa.reproduce --out runs/reproduce
    # the same on a local copy, 100 epochs each
    python -m levyjepa.reproduce --out runs/repro100 trainer.epochs=100 \\
        data.root=path/to/imagenette-160
    # a tiny CPU check of the whole pipeline (2 steps per run, a small ViT at 32 px)
    python -m levyjepa.reproduce --out /tmp/repro trainer.max_steps=2 \\
        data.root=path/to/imagenette-160 views.global_size=32 data.batch_size=16 data.workers=0 \\
        encoder.img_size=32 encoder.patch_size=8 encoder.embed_dim=64 encoder.depth=1 \\
        encoder.num_heads=2 encoder.pool_heads=2 encoder.emb_dim=64 encoder.proj_hidden=128 \\
        method.sigreg.slices=32 log.trackers=[] log.every=1

Errors in the command line or a recipe are printed as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import gc
import io
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from levyjepa.core.atomic import atomic_write_bytes, atomic_write_text
from levyjepa.core.cli_help import HelpFormatter
from levyjepa.core.errors import ConfigError
from levyjepa.report import REPORT_FILE, RunResult, draw_curve, read_run, write_report
from levyjepa.report import format_number as _number
from levyjepa.studies.seed_results import SEED_EPOCHS, SEED_RUNS, SeedRun

__all__ = ["RUNS", "RunResult", "main", "parse_runs", "plot_curves", "read_run",
           "results_table", "run_one", "write_results"]

RUNS: tuple[str, ...] = tuple(run.recipe for run in SEED_RUNS)
"""The recipes of the four documented runs, in the seed's order."""

RESULTS_FILE = "results.md"
CURVES_FILE = "curves.png"
_RESERVED = ("out_dir", "resume")  # set per run by this command


def default_recipes_dir() -> Path:
    """``recipes/`` of the source checkout this package is imported from."""
    return Path(__file__).resolve().parents[1] / "recipes"


def parse_runs(text: Optional[str]) -> list[str]:
    """``"a,b"`` to a list of known run names (all four when ``None``), in the seed's order."""
    if text is None:
        return list(RUNS)
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in RUNS]
    if unknown or not wanted:
        raise ConfigError(f"--runs: unknown run '{unknown[0] if unknown else text}'; valid: "
                          f"{', '.join(RUNS)}")
    return [name for name in RUNS if name in wanted]


def run_one(recipe: Path, run_dir: Path, overrides: Sequence[str]) -> bool:
    """Train one recipe in ``run_dir`` unless it is already complete.

    Returns:
        Whether it trained (``False``: skipped, its summary is there for the same length).
    """
    from levyjepa.config.recipe import load_recipe

    cfg = load_recipe(recipe, [*overrides, f"out_dir={run_dir}", "resume=auto"])
    if (run_dir / "summary.json").is_file() and (run_dir / "config.yaml").is_file():
        done = OmegaConf.load(run_dir / "config.yaml").trainer
        if (done.epochs, done.max_steps) == (cfg.trainer.epochs, cfg.trainer.max_steps):
            print(f"reproduce: {recipe.stem}: complete in {run_dir}, skipped (delete its "
                  "summary.json to run it again)")
            return False
    from levyjepa.training.loop import train

    train(cfg)
    # Free the finished run's loader iterators now: left to the garbage collector, they could be
    # collected inside the next run's forked loader workers, which then print a traceback
    # ("can only test a child process") while shutting down workers that are not theirs.
    gc.collect()
    return True


def _rate(value: float) -> str:
    """A learning rate in the seed's notation (``5e-4``)."""
    mantissa, exponent = f"{value:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _setting(result: Optional[RunResult], key: str, seed_value: float,
             fmt: Callable[[float], str]) -> str:
    """The run's setting, flagged when it differs from the seed's."""
    text = fmt(seed_value)
    if result is None or key not in result.setting:
        return text
    value = result.setting[key]
    if math.isclose(value, seed_value, rel_tol=1e-9, abs_tol=0.0):
        return text
    return f"**{fmt(value)}** (seed {text})"


def results_table(results: Mapping[str, Optional[RunResult]],
                  seed_runs: Sequence[SeedRun] = SEED_RUNS) -> str:
    """The seed's table (docs/seed_experiments.md) with the measured numbers beside the seed's.

    Args:
        results: ``recipe -> RunResult`` (``None`` or missing: not run yet).
        seed_runs: The documented runs, one row each.

    Returns:
        A Markdown table, one row per run. A setting that differs from the seed's (an override)
        is shown in bold with the seed's value beside it.
    """
    metrics = (("test/acc", "test_acc"), ("train/within", "within"),
               ("train/sigreg", "sigreg"), ("train/inv", "inv"))
    header = ["run", "gamma", "kappa", "levy lam", "net_lr_bs256", "epochs run",
              f"test/acc seed (epoch {SEED_EPOCHS})", "test/acc measured"]
    for key, _ in metrics[1:]:
        header += [f"final {key} seed", f"final {key} measured"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for seed in seed_runs:
        result = results.get(seed.recipe)
        epochs = "—"
        if result is not None and result.epochs is not None:
            planned = result.setting.get("epochs")
            epochs = f"{result.epochs:.4g}" + (f" of {planned:g}" if planned else "")
        row = [
            seed.label,
            _setting(result, "gamma", seed.gamma, lambda v: f"{v:g}"),
            _setting(result, "kappa", seed.kappa, lambda v: f"{v:g}"),
            _setting(result, "levy_lam", seed.levy_lam, lambda v: f"{v:g}"),
            _setting(result, "net_lr_bs256", seed.net_lr_bs256, _rate),
            epochs,
        ]
        for key, attr in metrics:
            measured = result.final.get(key) if result is not None else None
            row += [_number(getattr(seed, attr)), _number(measured)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(results: Mapping[str, Optional[RunResult]], path: Path,
                seed_runs: Sequence[SeedRun] = SEED_RUNS) -> None:
    """Write a PNG with ``test/acc`` and ``train/within`` (log scale) against the step.

    Matplotlib's Agg canvas is used directly (no pyplot, no display needed). Experiment 1 is
    blue, experiment 2 orange; baselines dashed, Lévy 2D runs solid.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5), layout="constrained")
    acc_ax, within_ax = fig.subplots(1, 2)
    for seed in seed_runs:
        result = results.get(seed.recipe)
        if result is None:
            continue
        style = dict(color="tab:blue" if seed.kappa > 0 else "tab:orange",
                     linestyle="-" if seed.gamma > 0 else "--", label=seed.label)
        draw_curve(acc_ax, result, "test/acc", **style)
        draw_curve(within_ax, result, "train/within", log=True, **style)  # positive values
    acc_ax.set(title="online probe test/acc", xlabel="step", ylabel="test/acc")
    within_ax.set(title="train/within (Lévy prior statistic)", xlabel="step",
                  ylabel="train/within", yscale="log")
    for ax in (acc_ax, within_ax):
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())


def write_results(out_dir: Path, *, command: Optional[str] = None) -> tuple[Path, Path]:
    """Rewrite ``results.md`` and ``curves.png`` from the run directories under ``out_dir``.

    Args:
        out_dir: The reproduction's folder (runs in ``out_dir/<recipe>``).
        command: The command line, quoted in ``results.md``.

    Returns:
        The paths of the table and the plot.
    """
    results = {run.recipe: read_run(out_dir / run.recipe) for run in SEED_RUNS}
    text = [
        "# Reproduction of the seed's image experiments (docs/seed_experiments.md)",
        "",
        f"Seed: {SEED_EPOCHS} epochs per run on one GPU, final values of the seed's logs. "
        "Measured: the last logged value of each metric in the run directories below "
        "(`test/acc` after the last evaluated step).",
        "",
    ]
    if command:
        text += ["Command:", "", "```bash", command, "```", ""]
    text += [results_table(results).rstrip("\n"), ""]
    for run in SEED_RUNS:
        result = results[run.recipe]
        where = (f"`{result.run_dir}`" if result is not None else "not run")
        text.append(f"- {run.label}: `recipes/{run.recipe}.yaml`, {where}")
    text += ["", f"Curves: `{CURVES_FILE}`. Every metric of every run: `{REPORT_FILE}` "
             "(`python -m levyjepa.report`).", ""]
    table_path, curves_path = out_dir / RESULTS_FILE, out_dir / CURVES_FILE
    atomic_write_text(table_path, "\n".join(text))
    plot_curves(results, curves_path)
    return table_path, curves_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the reproduction; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m levyjepa.reproduce",
        description="Run the seed's four image recipes and compare with its results.",
        formatter_class=HelpFormatter,
        epilog="overrides: any recipe key (python -m levyjepa.run RECIPE --print-config lists\n"
               "them) but out_dir and resume, which are set per run.\n"
               "Details: pydoc levyjepa.reproduce.",
    )
    parser.add_argument("overrides", nargs="*",
                        help="dotlist overrides applied to every run, e.g. trainer.epochs=100")
    parser.add_argument("--out", default="runs/reproduce", help="folder of the runs and results")
    parser.add_argument("--runs", default=None,
                        help=f"comma-separated subset of {','.join(RUNS)} (default: all)")
    parser.add_argument("--recipes", default=None, help="folder of the recipes (default: the "
                        "checkout's recipes/)")
    parser.add_argument("--traceback", action="store_true",
                        help="show the full traceback of recipe errors")
    args = parser.parse_intermixed_args(argv)
    show_traceback = args.traceback or os.environ.get("LEVYJEPA_TRACEBACK") == "1"
    out_dir = Path(args.out)
    command = " ".join(["python -m levyjepa.reproduce", f"--out {args.out}",
                        *([f"--runs {args.runs}"] if args.runs else []), *args.overrides])
    try:
        for item in args.overrides:
            if item.split("=", 1)[0].strip() in _RESERVED:
                raise ConfigError(f"override '{item}': {' and '.join(_RESERVED)} are set per run "
                                  "by reproduce (use --out)")
        names = parse_runs(args.runs)
        recipes = Path(args.recipes) if args.recipes else default_recipes_dir()
        for name in names:
            recipe = recipes / f"{name}.yaml"
            if not recipe.is_file():
                raise ConfigError(f"recipe file not found: {recipe} (use --recipes DIR)")
            run_one(recipe, out_dir / name, args.overrides)
            write_results(out_dir, command=command)  # after each run: progress is visible
        done = [out_dir / name for name in RUNS if (out_dir / name / "metrics.jsonl").is_file()]
        write_report(done, out_dir)
    except ConfigError as err:
        if show_traceback:
            raise
        print(f"levyjepa: error: {err}", file=sys.stderr)
        return 2
    print(f"reproduce: wrote {out_dir / RESULTS_FILE}, {out_dir / CURVES_FILE} and "
          f"{out_dir / REPORT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
