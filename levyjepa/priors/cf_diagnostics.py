"""Empirical versus theoretical characteristic functions of a Lévy-sheet prior, for plots.

For a batch of fields and a :class:`~levyjepa.priors.levy_sheet.LevySheetPrior`,
:func:`cf_diagnostics` returns per orientation family the empirical CF of each field's pooled
increments (the quantities the Epps-Pulley statistic compares) and the target ``phi`` at the
quadrature nodes. A field that matches the prior has ``cos_mean`` close to ``phi`` and
``sin_mean`` close to 0 at every node.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from levyjepa.priors.epps_pulley import empirical_cf, epps_pulley
from levyjepa.priors.levy_sheet import LevySheetPrior

__all__ = ["FamilyCF", "cf_diagnostics"]


class FamilyCF(NamedTuple):
    """Empirical and theoretical CF of one orientation family (all float32, on CPU).

    Attributes:
        name: Family name (``axis``, ``diagonal``).
        cell_area: Area (volume) of the family's cells.
        n_increments: Number of pooled increments per field.
        nodes: Quadrature nodes ``u_i``, ``(Q,)``.
        weights: Quadrature weights ``w_i``, ``(Q,)``.
        phi: Target CF ``phi_A(u_i)``, ``(Q,)``.
        cos_mean: ``mean cos(u_i z)`` per field, ``(B, Q)``.
        sin_mean: ``mean sin(u_i z)`` per field, ``(B, Q)``.
        statistic: ``EP_b`` per field, ``(B,)``.
    """

    name: str
    cell_area: float
    n_increments: int
    nodes: torch.Tensor
    weights: torch.Tensor
    phi: torch.Tensor
    cos_mean: torch.Tensor
    sin_mean: torch.Tensor
    statistic: torch.Tensor


@torch.no_grad()
def cf_diagnostics(
    prior: LevySheetPrior, fields: torch.Tensor, *, step: int = 0
) -> tuple[FamilyCF, ...]:
    """Empirical and theoretical CFs of each family of ``prior`` on a batch of fields.

    Args:
        prior: The prior (its ``rotate`` setting applies, seeded by ``step``).
        fields: ``(B, *grid, K)`` fields, e.g. ``tokens_proj``.
        step: Seeds the channel rotation.

    Returns:
        One :class:`FamilyCF` per family, in the prior's family order.
    """
    out = []
    for f, (fam, z) in enumerate(zip(prior.families, prior.increments(fields, step=step))):
        cos_mean, sin_mean = empirical_cf(z, prior.nodes)
        stat = epps_pulley(z, prior.nodes, prior.weights, prior.phi[f])
        out.append(
            FamilyCF(
                name=fam.name,
                cell_area=fam.cell_area,
                n_increments=z.shape[1],
                nodes=prior.nodes.cpu(),
                weights=prior.weights.cpu(),
                phi=prior.phi[f].cpu(),
                cos_mean=cos_mean.cpu(),
                sin_mean=sin_mean.cpu(),
                statistic=stat.cpu(),
            )
        )
    return tuple(out)
