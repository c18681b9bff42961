"""Every registered prior, the example plugin's included, honours the prior contract.

Contract (``levyjepa.priors``): built from its defaults, ``prior(x, step=...)`` on the tensor it
reads returns a float32 scalar, finite, whose gradient with respect to ``x`` is finite and not
identically zero. The names are collected at test time, after importing the example plugin.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from levyjepa import PRIORS
from levyjepa.plugins import import_plugin_modules

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"

if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))
import_plugin_modules(["levyjepa_example_plugin.priors"])

# The input each prior reads: proj (V, N, K), tokens_proj of images (N*V, H', W', K) or of clips
# (N*V, T', H', W', K). A new prior (built-in or plugin) must be added here.
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "sigreg": (4, 32, 8),
    "isotropic_moments": (4, 32, 8),
    "levy2d": (6, 8, 8, 4),
    "levy3d": (3, 4, 6, 6, 4),
    "stable_sheet2d": (6, 8, 8, 4),
}
NAMES = PRIORS.names()


def test_the_built_in_and_example_plugin_priors_are_collected() -> None:
    assert {"sigreg", "levy2d", "levy3d", "isotropic_moments", "stable_sheet2d"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_prior_builds_forwards_and_backwards(name: str) -> None:
    assert name in INPUT_SHAPES, (
        f"prior '{name}' is registered but tests/test_priors_registry.py does not know which "
        "tensor it reads: add its input shape to INPUT_SHAPES (proj (V, N, K) or tokens_proj "
        "(N*V, *grid, K))"
    )
    prior = PRIORS.build({"name": name})
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(INPUT_SHAPES[name], generator=gen) * 1.5 + 0.2).requires_grad_(True)
    loss = prior(x, step=3)
    assert isinstance(loss, torch.Tensor)
    assert loss.dim() == 0 and loss.dtype == torch.float32, (loss.shape, loss.dtype)
    assert torch.isfinite(loss)
    loss.backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
