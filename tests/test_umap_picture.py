"""The UMAP picture (levyjepa.diagnostics.umap_picture): one colour per class, the missing
package said in one line, and (with umap-learn installed) separated clusters stay separated."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from levyjepa.core.errors import ConfigError
from levyjepa.diagnostics.umap_picture import UMAP_MISSING, plot_umap, require_umap, umap_points


def _clusters(n: int = 60, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 3
    centres = torch.eye(dim)[:3] * 20.0
    return centres[labels] + torch.randn(n, dim, generator=gen), labels


def test_missing_umap_learn_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(ConfigError) as err:
        require_umap()
    assert str(err.value) == UMAP_MISSING and "\n" not in UMAP_MISSING


def test_one_scatter_per_class_with_its_points() -> None:
    x, y = _clusters()
    points = umap_points(x, seed=0, reducer=lambda a: a[:, :2])
    np.testing.assert_array_equal(points, x[:, :2].double().numpy())
    fig = plot_umap(points, y, class_names=["a", "b", "c"])
    ax = fig.axes[0]
    assert [len(c.get_offsets()) for c in ax.collections] == [20, 20, 20]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]


def test_a_reducer_of_the_wrong_shape_is_refused() -> None:
    x, _ = _clusters()
    with pytest.raises(ValueError, match=r"expected \(60, 2\)"):
        umap_points(x, seed=0, reducer=lambda a: a[:, :3])


@pytest.mark.slow
def test_real_umap_keeps_separated_clusters_apart() -> None:
    """With umap-learn installed (pip install 'levyjepa[umap]'): three far-apart clusters map to
    three groups, every point's nearest neighbour in the picture of its own class."""
    pytest.importorskip("umap", reason="the optional extra umap-learn is not installed")
    x, y = _clusters()
    points = umap_points(x, seed=0)
    d = ((points[:, None] - points[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (y.numpy()[d.argmin(1)] == y.numpy()).all()
