"""The example plugin's ``stable_sheet2d``: a Lévy-type prior given only by its log CF.

Its quadrature, target CF and loss are checked against independent NumPy/SciPy computations of
docs/method.md, Lévy-sheet prior, its Gaussian special case against :class:`LevySheetPrior` given
the Gaussian log
CF directly, and it is built from a recipe and trained for two steps.
"""

from __future__ import annotations

import copy
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.polynomial.laguerre import laggauss
from omegaconf import OmegaConf
from scipy.optimize import brentq

from levyjepa import PRIORS
from levyjepa.config.plugins import import_plugin_modules
from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.methods.attached_priors import AttachedPriors
from levyjepa.methods.lejepa import LeJEPA
from levyjepa.priors.levy_sheet import LevySheetPrior
from levyjepa.priors.stencils import families_2d
from levyjepa.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"

if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))
import_plugin_modules(["levyjepa_example_plugin.stable"])

PARAMS = {"stability": 1.3, "scale": 0.4, "sigma": 0.2}
RECIPE_LEVY = ["plugins=[levyjepa_example_plugin.stable]", "priors.within.weight=0.5",
               "priors.within.name=stable_sheet2d", "priors.within.stability=1.3",
               "priors.within.scale=0.4", "priors.within.sigma=0.2"]


def stable_log_cf(u: np.ndarray, stability: float, scale: float, sigma: float) -> np.ndarray:
    """``log phi_1(u) = -sigma^2 u^2 / 2 - (scale |u|)^stability``, written out again."""
    return -(sigma**2) * u**2 / 2 - (scale * abs(u)) ** stability


def reference_quadrature(log_cf, points: int = 17) -> tuple[float, float, np.ndarray, np.ndarray]:
    """docs/method.md, Lévy-sheet prior: ``log phi_1(u_max) = -4``, ``c = 10 / u_max``, 17-point
    Gauss-Laguerre."""
    u_max = brentq(lambda u: log_cf(u) + 4.0, 0.0, 1e4, xtol=1e-13)
    c = 10.0 / u_max
    x, omega = laggauss(points)
    return u_max, c, x / c, omega / c


def reference_within(field: np.ndarray, log_cf) -> float:
    """The docs/method.md, Lévy-sheet prior statistic from scratch (no rotation), float64.

    Channels ``0, 2, ...`` take the axis stencil (cell area 1), ``1, 3, ...`` the 45-degree
    stencil (area 2); ``EP_b = 2 sum_i w_i ((mean cos(u_i z) - phi(u_i))^2 + mean sin(u_i z)^2)``
    over all of field ``b``'s increments of a family; the loss is the mean over families of the
    mean over fields.
    """
    _, _, nodes, weights = reference_quadrature(log_cf)
    n_b, h, w, _ = field.shape
    per_family = []
    for parity, area in ((0, 1.0), (1, 2.0)):
        g = field[..., parity::2]
        eps = []
        for b in range(n_b):
            z = []
            if area == 1.0:
                for i in range(1, h):
                    for j in range(1, w):
                        z.append(g[b, i, j] - g[b, i, j - 1] - g[b, i - 1, j] + g[b, i - 1, j - 1])
            else:
                for i in range(1, h - 1):
                    for j in range(1, w - 1):
                        z.append(g[b, i - 1, j] + g[b, i + 1, j] - g[b, i, j - 1] - g[b, i, j + 1])
            z = np.concatenate(z)
            phi = np.exp(area * log_cf(nodes))
            cos_m = np.cos(np.outer(z, nodes)).mean(0)
            sin_m = np.sin(np.outer(z, nodes)).mean(0)
            eps.append(2.0 * np.sum(weights * ((cos_m - phi) ** 2 + sin_m**2)))
        per_family.append(np.mean(eps))
    return float(np.mean(per_family))


def test_built_from_a_recipe_section_forward_and_backward() -> None:
    cfg = load_recipe(QUICKSTART, RECIPE_LEVY)
    priors = AttachedPriors(OmegaConf.to_container(cfg.priors), outputs=LeJEPA.outputs,
                            method="lejepa")
    prior = priors.first_on("tokens_proj")
    assert priors.attachments["within"].weight == 0.5
    assert type(prior).__name__ == "StableSheet2D" and isinstance(prior, LevySheetPrior)
    assert (prior.log_cf.stability, prior.log_cf.scale, prior.log_cf.sigma) == (1.3, 0.4, 0.2)
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(3, 8, 8, 4, generator=gen) * 0.7).requires_grad_(True)
    loss = prior(x, step=5)
    assert loss.dim() == 0 and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() > 0
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("params", [PARAMS, {"stability": 0.7, "scale": 0.3, "sigma": 0.0}])
def test_quadrature_and_target_cf_match_scipy(params: dict[str, float]) -> None:
    prior = PRIORS.build({"name": "stable_sheet2d", **params})

    def log_cf(u):
        return stable_log_cf(u, **params)

    u_max, c, nodes, weights = reference_quadrature(log_cf)
    if params["sigma"] == 0:  # closed form: (scale u_max)^stability = 4
        assert u_max == pytest.approx(4 ** (1 / params["stability"]) / params["scale"], rel=1e-12)
    assert prior.u_max == pytest.approx(u_max, rel=1e-11)
    assert prior.c == pytest.approx(c, rel=1e-11)
    np.testing.assert_allclose(prior.nodes.numpy(), nodes, rtol=1e-6)
    np.testing.assert_allclose(prior.weights.numpy(), weights, rtol=1e-6)
    phi = np.stack([np.exp(log_cf(nodes)), np.exp(2.0 * log_cf(nodes))])
    np.testing.assert_allclose(prior.phi.numpy(), phi, rtol=1e-6, atol=1e-12)


def test_forward_matches_the_spec_statistic_from_scratch() -> None:
    prior = PRIORS.build({"name": "stable_sheet2d", **PARAMS, "rotate": False})
    rng = np.random.default_rng(0)
    field = (rng.standard_t(3, size=(3, 8, 8, 4)) * 0.5).astype(np.float32)
    got = prior(torch.from_numpy(field), step=0).item()
    want = reference_within(field.astype(np.float64), lambda u: stable_log_cf(u, **PARAMS))
    assert want > 1e-3  # far enough from 0 for a relative comparison
    assert got == pytest.approx(want, rel=1e-5)


def gaussian_log_cf(u: np.ndarray) -> np.ndarray:
    return -(0.35**2) * np.square(u)


@pytest.mark.parametrize(
    "params",
    [{"stability": 2.0, "scale": 0.35, "sigma": 0.0},  # S_2(scale) = N(0, 2 scale^2)
     {"stability": 1.5, "scale": 0.0, "sigma": 0.35 * math.sqrt(2)}],  # Brownian part alone
    ids=["stable2", "brownian"],
)
def test_gaussian_special_cases_equal_the_gaussian_sheet(params: dict[str, float]) -> None:
    stable = PRIORS.build({"name": "stable_sheet2d", **params})
    gauss = LevySheetPrior(log_cf=gaussian_log_cf, families=families_2d())
    assert stable.u_max == pytest.approx(gauss.u_max, rel=1e-12)
    for name in ("nodes", "weights", "phi"):
        torch.testing.assert_close(getattr(stable, name), getattr(gauss, name), rtol=1e-6, atol=0)
    x = torch.randn(4, 8, 8, 6, generator=torch.Generator().manual_seed(1))
    for step in (0, 7):  # rotate=True on both: the same Q per step
        assert stable(x, step=step).item() == pytest.approx(gauss(x, step=step).item(), rel=1e-6)


@pytest.mark.parametrize(
    ("params", "message"),
    [({"stability": 2.5}, r"stability must be in \(0, 2\], got 2.5"),
     ({"stability": 0.0}, r"stability must be in \(0, 2\], got 0.0"),
     ({"scale": -0.1}, r"scale and sigma must be >= 0"),
     ({"scale": 0.0, "sigma": 0.0}, r"scale or sigma must be > 0"),
     ({"sigma": float("inf")}, r"sigma must be a finite number")],
)
def test_invalid_parameters_are_one_line_errors(params: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=f"priors.within: prior 'stable_sheet2d': .*{message}"):
        PRIORS.build({"name": "stable_sheet2d", **params}, where="priors.within")
    cls = PRIORS.get("stable_sheet2d")
    with pytest.raises(ValueError, match=message) as err:
        cls(**params)
    assert "\n" not in str(err.value)


def test_picklable_and_copyable() -> None:
    prior = PRIORS.build({"name": "stable_sheet2d"})
    clone = pickle.loads(pickle.dumps(prior))
    x = torch.randn(2, 6, 6, 4, generator=torch.Generator().manual_seed(2))
    assert clone(x, step=3).item() == prior(x, step=3).item()
    assert copy.deepcopy(prior)(x, step=3).item() == prior(x, step=3).item()
    assert "stability=1.5" in repr(prior)


def test_two_training_steps_with_the_stable_prior(tmp_path: Path) -> None:
    from test_train import read_metrics, tiny

    cfg = load_recipe(QUICKSTART, tiny(tmp_path / "run", "trainer.max_steps=2", "log.every=1",
                                       *RECIPE_LEVY))
    assert train(cfg)["steps"] == 2
    train_events = [e for e in read_metrics(tmp_path / "run") if "train/within" in e]
    assert train_events and all(math.isfinite(e["train/within"]) for e in train_events)
    assert train_events[-1]["train/within"] > 0
