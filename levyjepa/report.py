"""Compare runs: a Markdown table of final and best metrics, and plots across runs.

Usage::

    python -m levyjepa.report RUN_DIR [RUN_DIR ...] [--out DIR]

Reads each run directory's ``metrics.jsonl``, ``config.yaml``, ``summary.json`` and, when
``python -m levyjepa.eval`` has been run, ``eval.json``, and writes (atomically) into ``DIR``
(default: the run directory for one run, else the folder the runs have in common):

- ``report.md``: one row per run, its ``gamma``, steps and epochs, then for every metric
  ``final / best`` (best is the maximum for accuracies, the minimum for training losses; the
  diagnostics show their final value only), and the offline k-NN and linear-probe accuracies;
- ``losses.png``: ``train/loss``, ``train/inv``, ``train/sigreg``,
  ``train/orig_lejepa_loss``, ``train/probe_loss`` and ``train/within`` against the step, one
  line per run (logarithmic axes where every value is positive);
- ``test_acc.png``: ``test/acc`` against the step;
- ``within.png``: ``train/within`` against the step (log scale), and the per-family
  Epps-Pulley statistics ``diag/ep_<family>`` when the runs logged diagnostics;
- ``diagnostics.png`` (when any run logged diagnostics): RankMe, participation ratio and
  smallest per-dimension std of ``emb`` and ``proj``.

:mod:`levyjepa.reproduce` builds its results on these functions.

Example::

    python -m levyjepa.report runs/quick_g0 runs/quick_g1 --out runs/compare

Errors are printed as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from levyjepa.core.atomic import atomic_write_bytes, atomic_write_text
from levyjepa.core.cli_help import HelpFormatter
from levyjepa.core.errors import ConfigError

__all__ = [
    "REPORT_FILE",
    "RunResult",
    "best_value",
    "draw_curve",
    "format_number",
    "main",
    "metrics_table",
    "plot_runs",
    "read_run",
    "write_report",
]

REPORT_FILE = "report.md"
LOSSES = ("train/loss", "train/inv", "train/sigreg", "train/orig_lejepa_loss",
          "train/probe_loss", "train/within")
DIAGNOSTICS = ("diag/emb_rankme", "diag/proj_rankme", "diag/emb_pr", "diag/proj_pr",
               "diag/emb_min_std", "diag/proj_min_std")
# Table columns in order (any other logged metric follows, sorted); train/lr is left out.
_COLUMNS = ("test/acc", "train/loss", "train/inv", "train/sigreg", "train/within",
            "train/orig_lejepa_loss", "train/probe_loss")
_SKIP = ("train/lr",)


@dataclass
class RunResult:
    """What a run directory holds, for tables and plots.

    Attributes:
        run_dir: The run directory.
        setting: ``gamma`` (the Lévy prior's weight, ``priors.within.weight``), ``kappa``
            (``method.kappa``), ``levy_lam`` (``priors.within.lam``), ``net_lr_bs256`` and
            ``epochs`` (planned) from its ``config.yaml``, where present.
        epochs: Epochs run (from ``summary.json``), or ``None`` while it has none.
        steps: Steps run (from ``summary.json``), or ``None``.
        final: Last logged value of every metric.
        curves: ``metric -> (steps, values)``.
        evaluation: The content of ``eval.json``, or ``None``.
    """

    run_dir: Path
    setting: dict[str, float] = field(default_factory=dict)
    epochs: Optional[float] = None
    steps: Optional[int] = None
    final: dict[str, float] = field(default_factory=dict)
    curves: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    evaluation: Optional[dict[str, Any]] = None


def read_run(run_dir: Path) -> Optional[RunResult]:
    """Read a run directory's config, summary, metrics and evaluation; ``None`` without metrics."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        return None
    result = RunResult(run_dir=run_dir)
    for line in metrics.read_text().splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        for key, value in event.items():
            if key in ("step", "epoch"):
                continue
            steps, values = result.curves.setdefault(key, ([], []))
            steps.append(int(event["step"]))
            values.append(float(value))
            result.final[key] = float(value)
    config = run_dir / "config.yaml"
    if config.is_file():
        cfg = OmegaConf.load(config)
        setting = {
            "gamma": OmegaConf.select(cfg, "priors.within.weight"),
            "kappa": OmegaConf.select(cfg, "method.kappa"),
            "levy_lam": OmegaConf.select(cfg, "priors.within.lam"),
            "net_lr_bs256": OmegaConf.select(cfg, "optim.net_lr_bs256"),
            "epochs": OmegaConf.select(cfg, "trainer.epochs"),
        }
        result.setting = {k: float(v) for k, v in setting.items() if v is not None}
    summary = run_dir / "summary.json"
    if summary.is_file():
        content = json.loads(summary.read_text())
        result.epochs = float(content["epochs"])
        result.steps = int(content["steps"]) if "steps" in content else None
    evaluation = run_dir / "eval.json"
    if evaluation.is_file():
        result.evaluation = json.loads(evaluation.read_text())
    return result


def format_number(value: Optional[float]) -> str:
    """A metric with up to 6 significant digits; ``—`` when missing or not finite."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.6g}"


def best_value(key: str, values: Sequence[float]) -> Optional[float]:
    """The best of a metric's values: max for accuracies, min for training losses, else None."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    if key.endswith("acc") or key.endswith("top1"):
        return max(finite)
    if key.startswith("train/") and key not in _SKIP:
        return min(finite)
    return None


def _labels(results: Sequence[RunResult]) -> list[str]:
    """Run names: the folder names, or the paths where two folders share a name."""
    names = [r.run_dir.name for r in results]
    if len(set(names)) == len(names):
        return names
    return [str(r.run_dir) for r in results]


def metrics_table(results: Sequence[RunResult]) -> str:
    """Markdown table: one row per run, ``final / best`` per metric (see module docstring)."""
    keys = {k for r in results for k in r.final if k not in _SKIP}
    ordered = [k for k in _COLUMNS if k in keys] + sorted(keys - set(_COLUMNS))
    evals = [("k-NN top1", "knn"), ("linear top1", "linear")]
    has_eval = any(r.evaluation for r in results)
    header = ["run", "gamma", "steps", "epochs", *ordered]
    if has_eval:
        header += [name for name, _ in evals]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, r in zip(_labels(results), results):
        row = [label, format_number(r.setting.get("gamma")),
               str(r.steps) if r.steps is not None else "—", format_number(r.epochs)]
        for key in ordered:
            final = r.final.get(key)
            best = best_value(key, r.curves.get(key, ([], []))[1])
            cell = format_number(final)
            if best is not None:
                cell += f" / {format_number(best)}"
            row.append(cell)
        if has_eval:
            for _, section in evals:
                value = (r.evaluation or {}).get(section, {}).get("top1")
                row.append(format_number(value))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def draw_curve(ax: Axes, result: RunResult, key: str, *, log: bool = False,
               **style: Any) -> bool:
    """Plot one metric of one run against the step; returns whether anything was drawn.

    On a logarithmic axis only positive values are drawn. Markers are added to short curves.
    """
    points = [(s, v) for s, v in zip(*result.curves.get(key, ([], [])))
              if math.isfinite(v) and (not log or v > 0)]
    if not points:
        return False
    steps, values = zip(*points)
    style.setdefault("marker", "o" if len(points) < 20 else None)
    ax.plot(steps, values, **style)
    return True


def _finish(ax: Axes, title: str, ylabel: str, *, log: bool) -> None:
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _all_positive(results: Sequence[RunResult], key: str) -> bool:
    values = [v for r in results for v in r.curves.get(key, ([], []))[1]]
    return bool(values) and all(v > 0 for v in values)


def _save(fig: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_runs(results: Sequence[RunResult], out_dir: Path) -> dict[str, Path]:
    """Write the PNG plots of the module docstring; returns ``name -> path``."""
    labels = _labels(results)
    colours = [f"C{i % 10}" for i in range(len(results))]
    written = {}

    fig = Figure(figsize=(15, 8), layout="constrained")
    for ax, key in zip(fig.subplots(2, 3).flat, LOSSES):
        log = _all_positive(results, key)
        for label, colour, r in zip(labels, colours, results):
            draw_curve(ax, r, key, log=log, color=colour, label=label)
        _finish(ax, key, key.split("/")[-1], log=log)
    written["losses"] = _save(fig, out_dir / "losses.png")

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for label, colour, r in zip(labels, colours, results):
        draw_curve(ax, r, "test/acc", color=colour, label=label)
    _finish(ax, "online probe test/acc", "test/acc", log=False)
    written["test_acc"] = _save(fig, out_dir / "test_acc.png")

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    families = sorted({k for r in results for k in r.curves if k.startswith("diag/ep_")})
    for label, colour, r in zip(labels, colours, results):
        draw_curve(ax, r, "train/within", log=True, color=colour, label=f"{label}: within")
        for fam, dash in zip(families, (":", "--", "-.")):
            draw_curve(ax, r, fam, log=True, color=colour, linestyle=dash, alpha=0.8,
                       label=f"{label}: {fam.removeprefix('diag/ep_')}")
    _finish(ax, "Lévy prior statistic (within; per family EP)", "statistic", log=True)
    written["within"] = _save(fig, out_dir / "within.png")

    if any(k in r.curves for r in results for k in DIAGNOSTICS):
        fig = Figure(figsize=(15, 4.5), layout="constrained")
        axes = fig.subplots(1, 3)
        for ax, stem in zip(axes, ("rankme", "pr", "min_std")):
            for label, colour, r in zip(labels, colours, results):
                draw_curve(ax, r, f"diag/emb_{stem}", color=colour, label=f"{label}: emb")
                draw_curve(ax, r, f"diag/proj_{stem}", color=colour, linestyle="--",
                           marker="s", label=f"{label}: proj")
            _finish(ax, f"{stem} (emb solid, proj dashed/squares)", stem,
                    log=stem == "min_std")
        written["diagnostics"] = _save(fig, out_dir / "diagnostics.png")
    return written


def write_report(run_dirs: Sequence[Path], out_dir: Path) -> dict[str, Path]:
    """Write ``report.md`` and the plots for ``run_dirs`` into ``out_dir``.

    Raises:
        ConfigError: naming a run directory without ``metrics.jsonl``.
    """
    results = []
    for run_dir in run_dirs:
        result = read_run(Path(run_dir))
        if result is None:
            raise ConfigError(f"{run_dir}: no metrics.jsonl (not a run directory, or the run "
                              "has not logged yet)")
        results.append(result)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = plot_runs(results, out_dir)
    lines = ["# Run report", "", "Cells are `final / best` (best: the maximum of an accuracy, "
             "the minimum of a training loss; diagnostics show their final value). k-NN and "
             "linear top1 come from `eval.json` (`python -m levyjepa.eval`).", "",
             metrics_table(results).rstrip("\n"), ""]
    for label, r in zip(_labels(results), results):
        lines.append(f"- {label}: `{r.run_dir}`")
    lines += ["", "Plots: " + ", ".join(f"`{p.name}`" for p in written.values()), ""]
    written["report"] = out_dir / REPORT_FILE
    atomic_write_text(written["report"], "\n".join(lines))
    return written


def default_out(run_dirs: Sequence[Path]) -> Path:
    """The run directory for one run, else the deepest folder the runs have in common."""
    if len(run_dirs) == 1:
        return Path(run_dirs[0])
    return Path(os.path.commonpath([str(Path(p).resolve()) for p in run_dirs]))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the report; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m levyjepa.report",
                                     description="Table and plots comparing run directories.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the runs' common folder)")
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else default_out(args.run_dirs)
    try:
        written = write_report(args.run_dirs, out)
    except ConfigError as err:
        print(f"levyjepa: error: {err}", file=sys.stderr)
        return 2
    print(f"report: wrote {', '.join(str(p) for p in written.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
