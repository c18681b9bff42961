"""A UMAP picture of the test embeddings, coloured by class (the seed ``004`` evaluation).

L. McInnes, J. Healy and J. Melville, "UMAP: Uniform Manifold Approximation and Projection for
Dimension Reduction", arXiv:1802.03426 (2018), through the ``umap-learn`` package, an optional
extra (``pip install 'levyjepa[umap]'``): ``python -m levyjepa.eval RUN_DIR umap=true`` writes
``RUN_DIR/pictures/step_<S>_umap.png``. Without the package the evaluation stops before any
work with one line saying what to install.

The map is a picture, not a measurement: UMAP keeps neighbourhoods, not distances or cluster
sizes, and its layout changes with its seed (fixed here to the run's seed) and ``n_neighbors``.
The numbers to compare runs by are the probes' accuracies and ``test_features`` in
``eval.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import numpy as np
import torch
from matplotlib.figure import Figure

from levyjepa.core.errors import ConfigError

__all__ = ["UMAP_MISSING", "plot_umap", "require_umap", "umap_points"]

UMAP_MISSING = ("umap=true needs the optional package umap-learn, which is not installed: "
                "pip install 'levyjepa[umap]' (or leave umap=false)")
"""The one line an evaluation with ``umap=true`` stops with when ``umap-learn`` is missing."""

MAX_POINTS = 5000
"""Test items drawn at most (the first ones): UMAP's cost grows with the number of points."""


def require_umap() -> Any:
    """The ``umap`` module of ``umap-learn``.

    Raises:
        ConfigError: :data:`UMAP_MISSING`, when it cannot be imported.
    """
    try:
        import umap
    except ImportError:
        raise ConfigError(UMAP_MISSING) from None
    return umap


def umap_points(features: torch.Tensor, *, seed: int, n_neighbors: int = 15,
                reducer: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> np.ndarray:
    """2-D UMAP coordinates ``(N, 2)`` of ``features`` ``(N, E)`` (at most :data:`MAX_POINTS`).

    Args:
        features: The embeddings.
        seed: UMAP's ``random_state``.
        n_neighbors: UMAP's neighbourhood size (cut to ``N - 1``).
        reducer: Instead of UMAP, any function from ``(N, E)`` to ``(N, 2)`` (tests).
    """
    x = features[:MAX_POINTS].double().numpy()
    if reducer is None:
        umap = require_umap()
        model = umap.UMAP(n_components=2, n_neighbors=max(2, min(n_neighbors, len(x) - 1)),
                          min_dist=0.1, random_state=seed)
        reducer = model.fit_transform
    points = np.asarray(reducer(x), dtype=np.float64)
    if points.shape != (len(x), 2):
        raise ValueError(f"the reducer returned shape {points.shape}, expected ({len(x)}, 2)")
    return points


def plot_umap(points: np.ndarray, labels: torch.Tensor, *, title: str = "",
              class_names: Optional[list[str]] = None) -> Figure:
    """A scatter of ``points`` ``(N, 2)``, one colour per class of ``labels`` ``(N,)``.

    Args:
        points: :func:`umap_points`.
        labels: Integer class of each point (the first ``N`` labels are used).
        title: Figure title.
        class_names: Names in the legend (default: the class numbers); the legend is drawn for
            20 classes or fewer.
    """
    y = labels[:len(points)].numpy()
    classes = np.unique(y)
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    palette = [f"C{i % 10}" for i in range(len(classes))] if len(classes) <= 10 else None
    for i, c in enumerate(classes):
        sel = y == c
        name = class_names[int(c)] if class_names and int(c) < len(class_names) else str(int(c))
        colour = palette[i] if palette else _many(i, len(classes))
        ax.scatter(points[sel, 0], points[sel, 1], s=4, color=colour, label=name, alpha=0.7,
                   linewidths=0)
    if len(classes) <= 20:
        ax.legend(fontsize=7, markerscale=3, loc="best", frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return fig


def _many(i: int, n: int) -> tuple[float, float, float, float]:
    """Colour ``i`` of ``n`` spread over a perceptually ordered colour map (more than 10)."""
    from matplotlib import colormaps

    return colormaps["turbo"](i / max(1, n - 1))
