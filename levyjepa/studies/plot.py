"""The plot of a study (:mod:`levyjepa.study`): ``study.png``, one panel per metric.

It draws the statistics of :func:`levyjepa.studies.tables.summarize` with the report's own
wording (:mod:`levyjepa.studies.tables`).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Optional

from levyjepa.core.atomic import atomic_write_bytes
from levyjepa.studies.stats import MIN_SEEDS
from levyjepa.studies.tables import BASELINE_LABELS, _compact, _detectable, _short

__all__ = ["plot_study"]

_ARM_COLOURS = ("tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                "tab:olive", "tab:cyan")
_BASELINE_COLOURS = {"untrained": "tab:gray", "pixels": "tab:green"}


def plot_study(study: dict[str, Any], path: Path) -> None:
    """Write ``study.png`` (atomically): one panel per metric.

    In each panel, every seed's value is a dot per arm (a seed's dots joined by a thin line),
    the arm's mean ± its 95% interval an error bar beside the dots, and each baseline a dashed
    horizontal line over the arm it belongs to; the title gives the verdict (two arms: with the
    difference, its interval and the smallest detectable difference) or every compared pair's
    difference and interval. Matplotlib's Agg canvas is used directly.
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
            if (entry["difference"]["n"] >= MIN_SEEDS
                    and comparisons[0].get("smallest_detectable_difference") is not None):
                title.append(f"smallest detectable difference: {_detectable(comparisons[0])}")
        else:
            title = [metric, *(f"{c['b']} - {c['a']}: {_compact(c)}"
                               + (" *" if c["n"] >= MIN_SEEDS and c["low"] is not None
                                  and not (c["low"] <= 0.0 <= c["high"]) else "")
                               for c in comparisons)]
        ax.set_title("\n".join(title), fontsize=8 if len(comparisons) == 1 else 6.5)
        ax.grid(True, axis="y", alpha=0.3)
    legend = panel_legend(axes, used=len(metrics))
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="outside lower center",
                   ncols=len(legend), fontsize=8)
    if any(len(study["results"][m]["comparisons"]) > 1 for m in metrics):
        fig.suptitle("X - Y: mean paired difference [95% CI]; * the interval excludes 0",
                     fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())


def panel_legend(axes: Any, *, used: int) -> dict[str, Any]:
    """Turn off the panels after the first ``used`` and gather the used ones' legend entries,
    one handle per label (the first seen), for one legend under the whole figure."""
    for ax in axes[used:]:
        ax.set_axis_off()
    legend: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    return legend
