"""The picture of a study's learning curves, ``learning_curves.png``
(:mod:`levyjepa.studies.curves`).

One panel per metric, the training step on x: each compared arm's mean across seeds as a solid
line with its 95% t interval as a band, each reference arm (``--reference``) as a dashed line,
and the baselines of ``eval.json`` (the untrained encoder, raw pixels) as horizontal lines.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from levyjepa.core.atomic import atomic_write_bytes
from levyjepa.studies.plot import _ARM_COLOURS as ARM_COLOURS
from levyjepa.studies.plot import _BASELINE_COLOURS as BASELINE_COLOURS
from levyjepa.studies.plot import panel_legend
from levyjepa.studies.tables import BASELINE_LABELS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["BAND", "plot_curves"]

BAND = "95% t interval across seeds (band)"
"""The legend's entry of the bands."""


def _series(at: dict[str, Any], field: str) -> tuple[list[int], list[float]]:
    """The steps and ``field`` (``mean``, ``low``, ``high``) where it is defined."""
    points = sorted((int(s), e[field]) for s, e in at.items() if e.get(field) is not None)
    return [s for s, _ in points], [v for _, v in points]


def plot_curves(study: dict[str, Any], path: Path) -> Figure:
    """Write ``learning_curves.png`` (atomically) from ``study["curves"]``.

    Args:
        study: The study with its ``curves`` (:func:`levyjepa.studies.curves.summarize_curves`).
        path: The file to write.

    Returns:
        The figure (its panels and legend are what the file shows).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    curves, arms, metrics = study["curves"], study["arms"], study["metrics"]
    references = set(curves["reference_arms"])
    columns = max(1, min(3, len(metrics)))
    rows = max(1, math.ceil(len(metrics) / columns))
    fig = Figure(figsize=(4.6 * columns, 3.6 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    if not metrics:
        axes[0].text(0.5, 0.5, "no results yet", ha="center", va="center")
        axes[0].set_axis_off()
    for ax, metric in zip(axes, metrics):
        for i, arm in enumerate(arms):
            name, colour = arm["name"], ARM_COLOURS[i % len(ARM_COLOURS)]
            at = curves["summary"][metric].get(name, {})
            steps, means = _series(at, "mean")
            if not steps:
                continue
            label = name if name == arm["label"] else f"{name} ({arm['label']})"
            if name in references:
                ax.plot(steps, means, linestyle="--", marker="o", markersize=3, color=colour,
                        label=f"{label}, reference")
                continue
            ax.plot(steps, means, marker="o", markersize=4, color=colour, label=label)
            band, low = _series(at, "low")
            if band:
                ax.fill_between(band, low, _series(at, "high")[1], color=colour, alpha=0.2,
                                linewidth=0)
        for kind, by_arm in curves["baselines"][metric].items():
            values = list(by_arm.values())
            same = max(values) - min(values) <= 1e-12 * max(1.0, abs(values[0]))
            shown = [(BASELINE_LABELS.get(kind, kind), values[0])] if same else [
                (f"{BASELINE_LABELS.get(kind, kind)} ({arm})", v) for arm, v in by_arm.items()]
            for label, value in shown:
                ax.axhline(value, linestyle=":", linewidth=1.4,
                           color=BASELINE_COLOURS.get(kind, "tab:purple"), label=label)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric.split("/")[-1], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    legend = panel_legend(axes, used=len(metrics))
    if any(a["name"] not in references for a in arms) and metrics:
        legend[BAND] = Patch(color="0.5", alpha=0.3, linewidth=0)
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="outside lower center",
                   ncols=min(len(legend), 2 * columns), fontsize=7)
    seeds = len(study["seeds"])
    fig.suptitle(f"Learning curves: mean across {seeds} seed{'s' if seeds != 1 else ''}, "
                 "95% t interval band", fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())
    return fig
