"""What the Hamiltonian JEPAs share about a latent state ``(q, p)``: its matched coordinates and
the seed's diagnostics.

Both ``hjepa`` (windows of a clip, :mod:`levyjepa.methods.hjepa`) and ``hjepa_views`` (views of an
image, :mod:`levyjepa.methods.hjepa_views`) read a state ``s = (q, p)`` ``(..., 2S)`` as its
position ``q = s[..., :S]`` and momentum ``p = s[..., S:]``, move it with
:func:`levyjepa.methods.hamiltonian.leapfrog` and compare the coordinates named by ``match``
(seed ``003``'s ``loss.match``): ``q``, ``p`` or ``qp`` (the whole state).

The diagnostics are the seed's (detached): ``q_pr`` and ``p_pr``, the participation ratio
``(sum lambda)^2 / sum lambda^2`` of the batch covariance of ``q`` and ``p`` (an effective rank
between 1 and ``S``; P. Gao, E. Trautmann, B. Yu et al., "A theory of multineuronal
dimensionality, dynamics and measurement", bioRxiv 2017); ``q_std_min``, the smallest
per-coordinate standard deviation of ``q`` over the batch; ``q2`` and ``p2``, the mean ``|q|^2``
and ``|p|^2``; ``V_var``, the batch variance of the potential ``V(q)``; ``energy_drift``, mean
``|H_end - H_start|`` over mean ``|H_start|`` of an integration (0 up to the integrator's error
without damping).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

MATCHES = ("q", "p", "qp")
"""Valid values of ``match``: the state coordinates a Hamiltonian JEPA's loss compares."""


def check_match(match: str) -> None:
    """Refuse a ``match`` other than ``q``, ``p`` or ``qp``.

    Raises:
        ValueError: naming ``match`` and the valid choices.
    """
    if match not in MATCHES:
        raise ValueError(f"match must be one of {', '.join(MATCHES)}, got {match!r}")


def matched(q: torch.Tensor, p: torch.Tensor, match: str) -> torch.Tensor:
    """The coordinates of the state ``(q, p)`` (each ``(..., S)``) that ``match`` names:
    ``q``, ``p`` (``(..., S)``) or ``qp``, the two concatenated (``(..., 2S)``)."""
    check_match(match)
    if match == "q":
        return q
    if match == "p":
        return p
    return torch.cat([q, p], -1)


def participation_ratio(x: torch.Tensor) -> torch.Tensor:
    """``(tr C)^2 / tr(C^2)`` of the batch covariance ``C`` of ``x`` ``(B, K)``: 1 for a
    rank-one cloud, ``K`` for an isotropic one."""
    centred = x - x.mean(0, keepdim=True)
    cov = centred.T @ centred / max(1, x.shape[0] - 1)
    return cov.diagonal().sum().square() / cov.square().sum().clamp_min(1e-12)


def state_diagnostics(potential: nn.Module, q: torch.Tensor, p: torch.Tensor,
                      path: Any) -> dict[str, torch.Tensor]:
    """The seed's diagnostics of context states and of their integration (module docstring).

    Args:
        potential: The potential ``V`` the states were integrated along.
        q: ``(B, S)`` context positions (detached).
        p: ``(B, S)`` context momenta (detached).
        path: The integration's :class:`levyjepa.methods.hamiltonian.Trajectory`.

    Returns:
        Scalars ``q_pr``, ``p_pr``, ``q_std_min``, ``q2``, ``p2``, ``V_var``, ``energy_drift``.
    """
    start, end = path.energy_start.detach(), path.energy_end.detach()
    return {"q_pr": participation_ratio(q), "p_pr": participation_ratio(p),
            "q_std_min": q.std(0, correction=0).min(), "q2": q.square().sum(-1).mean(),
            "p2": p.square().sum(-1).mean(), "V_var": potential(q).var(),
            "energy_drift": (end - start).abs().mean() / start.abs().mean().clamp_min(1e-12)}
