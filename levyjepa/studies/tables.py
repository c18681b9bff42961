"""The report of a study (:mod:`levyjepa.study`): statistics, ``study.md``, ``study.png``.

:func:`summarize` turns the study's runs (one entry per arm and seed, with the metrics and
baselines of its ``eval.json``) into per-metric statistics (:mod:`levyjepa.studies.stats`): per
arm, and per compared pair of arms (``study["compare"]``, ``X - Y`` each; a two-arm study
compares B with A); :func:`study_markdown` and :func:`plot_study` write them, atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from levyjepa.core.atomic import atomic_write_bytes, atomic_write_text
from levyjepa.studies.stats import MIN_SEEDS, paired_difference, t_interval, verdict

__all__ = ["BASELINE_LABELS", "plot_study", "seed_warning", "study_markdown", "summarize"]

BASELINE_LABELS = {"untrained": "untrained", "pixels": "raw pixels"}
"""How each kind of baseline of ``eval.json`` is labelled (other kinds: their own name)."""

_ARM_COLOURS = ("tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                "tab:olive", "tab:cyan")
_BASELINE_COLOURS = {"untrained": "tab:gray", "pixels": "tab:green"}


def _num(value: Optional[float]) -> str:
    """Four significant digits (0 for rounding residue below 1e-12); ``—`` when missing or
    not finite."""
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) < 1e-12:  # rounding residue of equal values (a difference of 0)
        value = 0.0
    return f"{value:.4g}"


def _values(runs: Sequence[dict[str, Any]], arm: str, seeds: Sequence[int],
            metric: str) -> list[Optional[float]]:
    """The metric of ``arm`` per seed (``None`` where that run is not there yet)."""
    by_seed = {r["seed"]: r["metrics"].get(metric) for r in runs if r["arm"] == arm}
    return [by_seed.get(seed) for seed in seeds]


def compared_pairs(study: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``(X, Y)`` arm names of the study's differences ``X - Y`` (default: every arm after
    the first minus the first)."""
    names = [arm["name"] for arm in study["arms"]]
    pairs = study.get("compare") or [[name, names[0]] for name in names[1:]]
    return [(x, y) for x, y in pairs]


def summarize(study: dict[str, Any]) -> dict[str, Any]:
    """The statistics of a study's runs so far.

    Args:
        study: ``arms`` (each with a ``name``), ``seeds``, ``runs`` (each with ``arm``,
            ``seed``, ``metrics``, ``baselines``, ``train_s``, ``eval_s``) and, optionally,
            ``compare`` (the ``[X, Y]`` pairs, :func:`compared_pairs`).

    Returns:
        ``metrics`` (the slash keys found in every run, sorted), ``missing_metrics`` (found in
        some runs only), ``total_run_s`` (the wall time of all runs) and ``results``: per
        metric, per arm its per-seed ``values`` and t interval; ``comparisons``, per compared
        pair ``X - Y``: ``b`` (X), ``a`` (Y), the paired difference's per-seed ``values``
        (seeds where both arms ran) and interval, and its ``verdict``; ``difference`` and
        ``verdict``, those of the first pair (B - A in a two-arm study); and the
        ``baselines`` (kind -> arm -> mean across seeds).
    """
    runs, seeds = study["runs"], study["seeds"]
    names = [arm["name"] for arm in study["arms"]]
    pairs = compared_pairs(study)
    found = [set(r["metrics"]) for r in runs]
    metrics = sorted(set.intersection(*found)) if found else []
    results: dict[str, Any] = {}
    for metric in metrics:
        entry: dict[str, Any] = {"arms": {}, "comparisons": []}
        per_arm = {name: _values(runs, name, seeds, metric) for name in names}
        for name, values in per_arm.items():
            present = [v for v in values if v is not None]
            entry["arms"][name] = {"values": values, **t_interval(present).as_dict()}
        for name_b, name_a in pairs:
            both = [(a, b) for a, b in zip(per_arm[name_a], per_arm[name_b])
                    if a is not None and b is not None]
            _, interval = paired_difference([a for a, _ in both], [b for _, b in both])
            entry["comparisons"].append({
                "b": name_b, "a": name_a,
                "values": [b - a if a is not None and b is not None else None
                           for a, b in zip(per_arm[name_a], per_arm[name_b])],
                **interval.as_dict(), "verdict": verdict(interval, name_b=name_b)})
        first = entry["comparisons"][0]
        entry["difference"] = {k: v for k, v in first.items() if k not in ("a", "b", "verdict")}
        entry["verdict"] = first["verdict"]
        baselines: dict[str, dict[str, list[float]]] = {}
        for run in runs:
            for kind, values in run["baselines"].items():
                if metric in values:
                    baselines.setdefault(kind, {}).setdefault(run["arm"], []).append(values[metric])
        entry["baselines"] = {kind: {arm: math.fsum(v) / len(v) for arm, v in by_arm.items()}
                              for kind, by_arm in baselines.items()}
        results[metric] = entry
    times = [r[k] for r in runs for k in ("train_s", "eval_s") if r.get(k) is not None]
    return {"metrics": metrics, "missing_metrics": sorted(set.union(*found) - set(metrics))
            if found else [], "results": results, "total_run_s": math.fsum(times)}


def _all_equal(entry: dict[str, Any]) -> bool:
    """Whether a defined interval has zero width: every seed gave the same value (up to
    rounding residue), so the interval estimates no spread at all."""
    low, high = entry["low"], entry["high"]
    return (low is not None and high is not None
            and high - low <= 1e-12 * max(1.0, abs(entry["mean"])))


def _interval_text(entry: dict[str, Any]) -> str:
    """``mean [low, high]``; ``mean (n=1, ...)`` when the interval is undefined, ``mean (n=2,
    all equal: ...)`` when it has zero width (not shown as an interval: it is not one)."""
    if entry["low"] is None or entry["high"] is None:
        return f"{_num(entry['mean'])} (n={entry['n']}, interval undefined)"
    if _all_equal(entry):
        return f"{_num(entry['mean'])} (n={entry['n']}, all equal: no interval)"
    return f"{_num(entry['mean'])} [{_num(entry['low'])}, {_num(entry['high'])}]"


def _compact(entry: dict[str, Any]) -> str:
    """Like :func:`_interval_text`, shorter when undefined or all equal (for a panel's title)."""
    if entry["low"] is None or entry["high"] is None:
        return f"{_num(entry['mean'])} (n={entry['n']})"
    if _all_equal(entry):
        return f"{_num(entry['mean'])} (n={entry['n']}, all equal)"
    return _interval_text(entry)


def seed_warning(study: dict[str, Any]) -> Optional[str]:
    """One line when the study has fewer than :data:`MIN_SEEDS` seeds (no verdicts), else
    ``None``; it names the metrics whose values were equal on every seed, if any.

    Args:
        study: The study with its :func:`summarize` fields.
    """
    n = len(study["seeds"])
    if n >= MIN_SEEDS:
        return None
    text = (f"{n} seed{'' if n == 1 else 's'} per arm: no verdicts, at least {MIN_SEEDS} "
            f"seeds are needed (--seeds {MIN_SEEDS})")
    if n < 2:
        return text + "; no intervals either"
    equal = [m for m in study["metrics"]
             if any(_all_equal(e) for e in study["results"][m]["arms"].values())]
    text += "; with 2 seeds a 95% interval is 12.7 standard errors wide"
    if equal:
        shown = ", ".join(equal[:3]) + (", ..." if len(equal) > 3 else "")
        text += (f"; {len(equal)} metric(s) gave one value on every seed ({shown}): no spread, "
                 "no interval")
    return text


def _arm_heading(arm: dict[str, Any]) -> str:
    return f"{arm['name']} ({arm['label']})"


def _metric_section(study: dict[str, Any], metric: str) -> list[str]:
    entry = study["results"][metric]
    arms, comparisons = study["arms"], entry["comparisons"]
    header = ["seed", *(_arm_heading(arm) for arm in arms),
              *(f"{c['b']} - {c['a']}" for c in comparisons)]
    lines = [f"### {metric}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for i, seed in enumerate(study["seeds"]):
        cells = [str(seed), *(_num(entry["arms"][a["name"]]["values"][i]) for a in arms),
                 *(_num(c["values"][i]) for c in comparisons)]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["mean [95% CI]", *(_interval_text(entry["arms"][a["name"]]) for a in arms),
             *(_interval_text(c) for c in comparisons)]
    lines += ["| " + " | ".join(cells) + " |", ""]
    if len(comparisons) == 1:
        lines += [f"Verdict: {entry['verdict']}.", ""]
    else:
        lines += [f"- {c['b']} - {c['a']}: {c['verdict']}." for c in comparisons] + [""]
    for kind, by_arm in entry["baselines"].items():
        values = ", ".join(f"{arm} {_num(v)}" for arm, v in by_arm.items())
        lines.append(f"- baseline {BASELINE_LABELS.get(kind, kind)} (mean across seeds): "
                     f"{values}")
    return lines + ([""] if entry["baselines"] else [])


def _within(where: str, report: Path) -> str:
    """``where`` relative to the report's folder when it lies inside it."""
    try:
        return str(Path(where).relative_to(report.parent))
    except ValueError:
        return where


def study_markdown(study: dict[str, Any], path: Path) -> str:
    """Write ``study.md`` (atomically) and return its text.

    Args:
        study: The study with its :func:`summarize` fields.
        path: The file to write.
    """
    arms, seeds = study["arms"], study["seeds"]
    pairs = compared_pairs(study)
    if len(arms) == 2:
        title = f"# Study: does {_arm_heading(arms[1])} beat {_arm_heading(arms[0])}?"
    else:
        title = "# Study: " + ", ".join(_arm_heading(a) for a in arms)
    shown = ", ".join(f"{x} - {y}" for x, y in pairs)
    text = [title, "",
            f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}) per arm, paired by seed. "
            "Per arm: mean and 95% Student t interval across seeds (n - 1 degrees of freedom). "
            f"{shown}: the per-seed difference, its mean and its own t interval; "
            "the verdict reads that interval (\"no detectable difference\" when it contains 0).",
            "", "Command:", "", "```bash", study["command"], "```", "", "Arms:", ""]
    for arm in arms:
        extra = " ".join(f"`{o}`" for o in arm["overrides"])
        text.append(f"- {arm['name']}: `{arm['recipe']}`" + (f", with {extra}" if extra else ""))
    if study["overrides"]:
        text.append(("- both: " if len(arms) == 2 else "- every arm: ")
                    + " ".join(f"`{o}`" for o in study["overrides"]))
    text.append("- evaluation: " + " ".join(f"`{o}`" for o in study["eval"]))
    warning = seed_warning(study)
    if warning is not None:  # never with MIN_SEEDS seeds or more: those reports are unchanged
        text += ["", f"Warning: {warning}."]
    text += ["", "## Summary", ""]
    if not study["metrics"]:
        text += ["No metric yet.", ""]
    elif len(pairs) == 1:
        (name_b, name_a), = pairs
        header = ["metric", *(f"{_arm_heading(a)} mean [95% CI]" for a in arms),
                  f"{name_b} - {name_a} [95% CI]", "verdict"]
        text += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for metric in study["metrics"]:
            entry = study["results"][metric]
            cells = [metric, *(_interval_text(entry["arms"][a["name"]]) for a in arms),
                     _interval_text(entry["difference"]), _short(entry["verdict"])]
            text.append("| " + " | ".join(cells) + " |")
        text.append("")
    else:  # one table of the arms, one of the compared pairs
        header = ["metric", *(f"{_arm_heading(a)} mean [95% CI]" for a in arms)]
        text += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for metric in study["metrics"]:
            entry = study["results"][metric]
            cells = [metric, *(_interval_text(entry["arms"][a["name"]]) for a in arms)]
            text.append("| " + " | ".join(cells) + " |")
        header = ["metric", *(f"{x} - {y} [95% CI]: verdict" for x, y in pairs)]
        text += ["", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for metric in study["metrics"]:
            cells = [metric, *(f"{_interval_text(c)}: {_short(c['verdict'])}"
                               for c in study["results"][metric]["comparisons"])]
            text.append("| " + " | ".join(cells) + " |")
        text.append("")
    if study["missing_metrics"]:
        text += [f"Not in every run, left out: {', '.join(study['missing_metrics'])}.", ""]
    text += ["## Per metric", ""]
    for metric in study["metrics"]:
        text += _metric_section(study, metric)
    text += ["## Runs", "", "Folders relative to this file's.", "",
             "| arm | seed | run folder | training s | evaluation s | log |",
             "|---|---|---|---|---|---|"]
    for run in study["runs"]:
        done = " (earlier, skipped now)" if run["skipped"] else ""
        text.append(f"| {run['arm']} | {run['seed']} | `{_within(run['run_dir'], path)}`{done} | "
                    f"{_num(run['train_s'])} | {_num(run['eval_s'])} | "
                    f"`{_within(run['log'], path)}` |")
    text += ["", f"Wall time of all runs: {study['total_run_s']:.1f} s; of this invocation: "
             f"{study.get('wall_s', 0.0):.1f} s. Plot: `study.png`; every value: `study.json`.",
             ""]
    joined = "\n".join(text)
    atomic_write_text(path, joined)
    return joined


def _short(text: str) -> str:
    """The verdict without its interval (for a panel's title)."""
    return text.rsplit(" (", 1)[0] if text.endswith("])") else text


def plot_study(study: dict[str, Any], path: Path) -> None:
    """Write ``study.png`` (atomically): one panel per metric.

    In each panel, every seed's value is a dot per arm (a seed's dots joined by a thin line),
    the arm's mean ± its 95% interval an error bar beside the dots, and each baseline a dashed
    horizontal line over the arm it belongs to; the title gives the verdict (two arms) or every
    compared pair's difference and interval. Matplotlib's Agg canvas is used directly.
    """
    from matplotlib.figure import Figure

    metrics, arms = study["metrics"], study["arms"]
    count = len(arms)
    columns = max(1, min(4 if count <= 3 else 3, len(metrics)))
    rows = max(1, math.ceil(len(metrics) / columns))
    wide = 3.6 + 0.7 * max(0, count - 2)
    fig = Figure(figsize=(wide * columns, (3.6 + 0.25 * max(0, count - 2)) * rows),
                 layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    if not metrics:
        axes[0].text(0.5, 0.5, "no results yet", ha="center", va="center")
        axes[0].set_axis_off()
    for ax, metric in zip(axes, metrics):
        entry = study["results"][metric]
        per_arm = [entry["arms"][a["name"]]["values"] for a in arms]
        for seed_values in zip(*per_arm):  # a seed's values joined across the arms
            xs = [x for x, v in enumerate(seed_values) if v is not None]
            if len(xs) > 1:
                ax.plot(xs, [seed_values[x] for x in xs], color="0.6", linewidth=0.8, zorder=1)
        for x, (arm, values) in enumerate(zip(arms, per_arm)):
            present = [v for v in values if v is not None]
            ax.scatter([x] * len(present), present, color=_ARM_COLOURS[x % len(_ARM_COLOURS)],
                       s=28, zorder=3,
                       label="seeds" if x == 0 else None)
            stats = entry["arms"][arm["name"]]
            if stats["mean"] is not None:
                err = ([[stats["mean"] - stats["low"]], [stats["high"] - stats["mean"]]]
                       if stats["low"] is not None else None)
                ax.errorbar([x + 0.18], [stats["mean"]], yerr=err, fmt="D", color="black",
                            markersize=5, capsize=4, zorder=4,
                            label="mean ± 95% CI" if x == 0 else None)
        for kind, by_arm in entry["baselines"].items():
            label: Optional[str] = BASELINE_LABELS.get(kind, kind)
            for x, arm in enumerate(arms):
                if arm["name"] in by_arm:
                    ax.hlines(by_arm[arm["name"]], x - 0.35, x + 0.35, linestyles="dashed",
                              colors=_BASELINE_COLOURS.get(kind, "tab:purple"), label=label)
                    label = None
        ax.set_xticks(range(count), [a["name"] if a["name"] == a["label"]
                                     else f"{a['name']}\n({a['label']})" for a in arms],
                      fontsize=7, rotation=0 if count <= 3 else 30)
        ax.set_xlim(-0.5, count - 0.5)
        comparisons = entry["comparisons"]
        if len(comparisons) == 1:
            title = [metric, _short(entry["verdict"])]
            if entry["difference"]["n"]:
                title.append(f"{comparisons[0]['b']} - {comparisons[0]['a']}: "
                             f"{_compact(entry['difference'])}")
        else:
            title = [metric, *(f"{c['b']} - {c['a']}: {_compact(c)}"
                               + (" *" if c["n"] >= MIN_SEEDS and c["low"] is not None
                                  and not (c["low"] <= 0.0 <= c["high"]) else "")
                               for c in comparisons)]
        ax.set_title("\n".join(title), fontsize=8 if len(comparisons) == 1 else 6.5)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes[len(metrics):] if metrics else ():
        ax.set_axis_off()
    legend: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="outside lower center",
                   ncols=len(legend), fontsize=8)
    if any(len(study["results"][m]["comparisons"]) > 1 for m in metrics):
        fig.suptitle("X - Y: mean paired difference [95% CI]; * the interval excludes 0",
                     fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())
