"""Pictures (levyjepa.diagnostics.pictures): written at the end of training, to the run and the
trackers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from levyjepa.config.recipe import load_recipe
from levyjepa.diagnostics.pictures import ks_distance, pca_rgb
from levyjepa.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_training_writes_pictures_and_logs_them(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from test_train import tiny

    run = tmp_path / "run"
    train(load_recipe(ROOT / "recipes" / "quickstart.yaml",
                      tiny(run, "priors.within.name=levy2d", "trainer.max_steps=2",
                           "log.pictures=true", "log.trackers=[tensorboard]")))
    for name in ("cf", "increments", "token_field", "attention"):
        assert (run / "pictures" / f"step_00000002_{name}.png").read_bytes().startswith(PNG_MAGIC)
    events = EventAccumulator(str(run / "tensorboard" / "levyjepa"), size_guidance={"images": 0})
    events.Reload()
    assert {"pictures/cf", "pictures/increments", "pictures/token_field",
            "pictures/attention"} <= set(events.Tags()["images"])


def test_without_levy_prior_only_the_token_field_and_attention(tmp_path: Path) -> None:
    from test_train import tiny

    run = tmp_path / "run"
    train(load_recipe(ROOT / "recipes" / "quickstart.yaml",
                      tiny(run, "trainer.max_steps=1", "log.pictures=true",
                           "priors.within=null")))
    assert sorted(p.name for p in (run / "pictures").iterdir()) == [
        "step_00000001_attention.png", "step_00000001_token_field.png"]


def test_pca_rgb_recovers_three_directions() -> None:
    """A field varying along three orthogonal directions of R^8 with uncorrelated coordinates of
    decreasing variance: its RGB channels are those coordinates, affinely rescaled to [0, 1]."""
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(42, 3, generator=gen, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.cat([torch.ones(42, 1, dtype=torch.float64), raw], 1))
    coords = (q[:, 1:] * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)).reshape(6, 7, 3)
    basis, _ = torch.linalg.qr(torch.randn(8, 3, generator=gen, dtype=torch.float64))
    rgb = pca_rgb(coords @ basis.T + 5.0)
    assert rgb.shape == (6, 7, 3) and rgb.min() == 0.0 and rgb.max() == 1.0
    for c in range(3):
        corr = np.corrcoef(rgb[..., c].ravel(), coords[..., c].numpy().ravel())[0, 1]
        assert abs(corr) > 1 - 1e-9


def test_ks_distance() -> None:
    grid = (np.arange(1000) + 0.5) / 1000  # the uniform law's mid-quantiles: KS = 0.5 / n
    assert ks_distance(grid, grid) == pytest.approx(0.0005)
    z = np.sort(np.random.default_rng(0).uniform(size=1000))
    assert ks_distance(z, z) < 1.95 / np.sqrt(1000)  # exceeded with probability 0.001
    assert ks_distance(z, np.zeros_like(z)) == pytest.approx(1.0)
