"""The seed experiments' documented results (docs/seed_experiments.md).

Each run trained for 800 epochs on one GPU (ViT-S/8, Imagenette 160 px, batch 96, ``V = 4``,
``lamb = 0.02``, ``proj_dim = 16``); the metrics are the final values of its wandb summary,
rounded there to 5 decimals. :mod:`levyjepa.reproduce` prints them beside a new run's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedRun:
    """One documented run: its setting and its final metrics.

    Attributes:
        recipe: The recipe in ``recipes/`` that reproduces it.
        label: The run's name in the seed's table.
        gamma: Weight of the Lévy prior (``priors.within.weight`` in the recipe).
        kappa: Weight of the invariance term (``method.kappa``).
        levy_lam: Jump intensity ``lam`` of the Lévy prior (``priors.within.lam``).
        net_lr_bs256: Encoder learning rate at batch 256.
        test_acc: Online-probe test accuracy after the last epoch.
        within: Final ``train/within``.
        sigreg: Final ``train/sigreg``.
        inv: Final ``train/inv``.
    """

    recipe: str
    label: str
    gamma: float
    kappa: float
    levy_lam: float
    net_lr_bs256: float
    test_acc: float
    within: float
    sigreg: float
    inv: float


SEED_EPOCHS = 800
"""Epochs of every seed run."""

SEED_RUNS: tuple[SeedRun, ...] = (
    SeedRun("image_baseline", "exp 1 baseline", gamma=0.0, kappa=1.0, levy_lam=2.0,
            net_lr_bs256=5e-4, test_acc=0.90726, within=1.54163, sigreg=1.14062, inv=0.03608),
    SeedRun("image_levy2d", "exp 1 Lévy 2D", gamma=1.0, kappa=1.0, levy_lam=2.0,
            net_lr_bs256=5e-4, test_acc=0.91287, within=0.00148, sigreg=1.0, inv=0.03697),
    SeedRun("image_noinv_baseline", "exp 2 baseline (no invariance)", gamma=0.0, kappa=0.0,
            levy_lam=1.0, net_lr_bs256=5e-5, test_acc=0.56943, within=0.50736, sigreg=0.64062,
            inv=0.32771),
    SeedRun("image_noinv_levy2d", "exp 2 Lévy 2D (no invariance)", gamma=1.0, kappa=0.0,
            levy_lam=1.0, net_lr_bs256=5e-5, test_acc=0.59057, within=0.00128, sigreg=0.63281,
            inv=0.3265),
)
"""The four runs, in the order of the seed's table."""
