"""Grassberger-Procaccia correlation dimension: golden checks on sets of known dimension."""

from __future__ import annotations

import math

import pytest
import torch

from levyjepa.diagnostics.correlation_dimension import correlation_dimension, correlation_sum


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_correlation_sum_by_hand() -> None:
    # 4 points on a line at 0, 1, 3, 6: pair distances 1, 2, 3, 3, 5, 6
    x = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    c = correlation_sum(x, torch.tensor([0.5, 1.5, 3.0, 3.5, 10.0]))
    assert c.tolist() == pytest.approx([0.0, 1 / 6, 2 / 6, 4 / 6, 1.0])


@pytest.mark.parametrize(("name", "expected", "tolerance"), [
    ("circle in 3-D", 1.0, 0.1),
    ("plane patch in 6-D", 2.0, 0.2),
    ("5-D Gaussian in 8-D", 5.0, 0.8),
])
def test_known_dimensions(name: str, expected: float, tolerance: float) -> None:
    n, g = 2000, _gen(0)
    if name.startswith("circle"):
        t = torch.rand(n, generator=g) * 2 * math.pi
        x = torch.stack([t.cos(), t.sin(), torch.zeros(n)], 1)
    elif name.startswith("plane"):
        x = torch.zeros(n, 6)
        x[:, :2] = torch.rand(n, 2, generator=g)
    else:
        x = torch.zeros(n, 8)
        x[:, :5] = torch.randn(n, 5, generator=g)
    rotation, _ = torch.linalg.qr(torch.randn(x.shape[1], x.shape[1], generator=_gen(1)))
    estimate = correlation_dimension(x @ rotation)  # rotation changes no distance
    assert abs(estimate - expected) <= tolerance, (name, estimate)


def test_repeated_points_and_bad_arguments() -> None:
    assert math.isnan(correlation_dimension(torch.ones(50, 3)))
    with pytest.raises(ValueError, match="low < high"):
        correlation_dimension(torch.randn(10, 2), low=0.5, high=0.1)
    with pytest.raises(ValueError, match="N >= 2"):
        correlation_dimension(torch.randn(1, 2))
