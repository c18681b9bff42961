"""Every registered prior, the example plugin's included, honours the prior contract.

Contract (``levyjepa.priors``): built from its defaults, ``prior(x, step=...)`` on the tensor it
reads returns a float32 scalar, finite, whose gradient with respect to ``x`` is finite and not
identically zero, whether the input is float32, bf16 under CPU autocast or float64 (its gradient
keeps the input's dtype). The names are collected at test time, after importing the example
plugin.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from levyjepa import PRIORS
from levyjepa.config.plugins import import_plugin_modules

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"

if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))
import_plugin_modules(["levyjepa_example_plugin.priors"])

# The input each prior reads: proj (V, N, K), tokens_proj of images (N*V, H', W', K) or of clips
# (N*V, T', H', W', K). A new prior (built-in or plugin) must be added here.
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "sigreg": (4, 32, 8),
    "sigreg_tokens": (6, 8, 8, 4),
    "isotropic_moments": (4, 32, 8),
    "levy2d": (6, 8, 8, 4),
    "levy3d": (3, 4, 6, 6, 4),
    "stable_sheet2d": (6, 8, 8, 4),
}
NAMES = PRIORS.names()


def test_the_built_in_and_example_plugin_priors_are_collected() -> None:
    assert {"sigreg", "levy2d", "levy3d", "isotropic_moments", "stable_sheet2d"} <= set(NAMES)


# How the input arrives: float32; bf16 under CPU autocast (the GPU recipes' precision); float64
# (a prior takes device and dtype from its input, it does not assume float32).
MODES = {"float32": torch.float32, "bf16_autocast": torch.bfloat16, "float64": torch.float64}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", NAMES)
def test_every_prior_builds_forwards_and_backwards(name: str, mode: str) -> None:
    assert name in INPUT_SHAPES, (
        f"prior '{name}' is registered but tests/test_priors_registry.py does not know which "
        "tensor it reads: add its input shape to INPUT_SHAPES (proj (V, N, K) or tokens_proj "
        "(N*V, *grid, K))"
    )
    prior = PRIORS.build({"name": name})
    gen = torch.Generator().manual_seed(0)
    dtype = MODES[mode]
    x = (torch.randn(INPUT_SHAPES[name], generator=gen) * 1.5 + 0.2).to(dtype)
    x.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16_autocast"):
        loss = prior(x, step=3)
    assert isinstance(loss, torch.Tensor)
    assert loss.dim() == 0 and loss.dtype == torch.float32, (loss.shape, loss.dtype)
    assert torch.isfinite(loss)
    loss.backward()
    assert x.grad is not None and x.grad.shape == x.shape and x.grad.dtype == dtype
    assert torch.isfinite(x.grad.float()).all()
    assert x.grad.float().abs().sum() > 0
