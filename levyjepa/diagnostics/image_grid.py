"""A grid of image panels, one row per sample: the layout of the per-sample pictures."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def image_grid(rows: int, cols: int) -> tuple[Figure, np.ndarray]:
    """A figure of ``rows x cols`` panels of 2.4 inches, and its axes as a 2-D array."""
    fig = Figure(figsize=(2.4 * cols, 2.4 * rows + 0.5), layout="constrained")
    return fig, np.asarray(fig.subplots(rows, cols, squeeze=False))


def finish_grid(fig: Figure, axes: np.ndarray, title: str) -> Figure:
    """Remove every panel's ticks and set the figure's title."""
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return fig
