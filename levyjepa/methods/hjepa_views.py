"""``hjepa_views``: HJEPA on images, as its seed trains it: one view's state is integrated by
Hamiltonian dynamics to land on the other views' states.

Seed ``003`` (HJEPA, the Hamiltonian JEPA) trains on images (CIFAR-100, ImageNet-100) with a
ResNet and multi-view crops; :mod:`levyjepa.methods.hjepa` is its form on clips. Here, with
``G`` global views (the first view group) and ``L`` local views (the second, smaller group,
optional; encoded separately, as LeJEPA's multi-crop), for each image:

1. every view's pooled embedding ``emb`` ``(E,)`` goes through a BatchNorm MLP (``state_proj``,
   all views in one batch, so they share its normalisation) to a state ``s = (q, p)``, each of
   width ``S`` (``d = 2S`` coordinates);
2. global view 0 is the context: its state is integrated by ``steps`` leapfrog steps of size
   ``dt`` (a fixed integration time ``steps * dt``; the local targets integrate ``local_steps``
   steps when set) along ``H = |p|^2 / 2 + V(q)``, ``V`` a harmonic well plus a learnable
   residual MLP (:mod:`levyjepa.methods.hamiltonian`), with optional ``damping``;
3. every other view (global views ``1 .. G-1``, then the local views) is a target; with
   ``Phi(s_0)`` the integrated context state and ``c(.)`` the coordinates of ``match`` (``q``,
   ``p`` or ``qp``; ``|c|`` of them), over the ``T = G - 1 + L`` targets and ``N`` images::

       pred = 1 / (T N |c|) * sum_{t, n} |c(Phi(s_{0,n})) - c(s_{t,n})|^2

   (the target keeps its gradient, as in :mod:`levyjepa.methods.hjepa`: no teacher);
4. ``sigreg``: SIGReg (Balestriero and LeCun, "LeJEPA", arXiv:2511.08544) on the states of all
   ``V = G + L`` views ``(V, N, d)``;
5. ``budget`` (:func:`energy_budget`): a quadratic hinge on each state's mean squared
   coordinate ``m = |s|^2 / d`` above the ceiling ``budget_max``; ``m * S`` is the state's
   energy ``(|q|^2 + |p|^2) / 2`` in the unit harmonic well, so this caps the energy the
   dynamics carry (zero while every state stays under its budget)::

       budget = 1 / (V N) * sum_{v, n} max(0, m_{v, n} - budget_max)^2

6. ``logdet`` (:func:`coding_rate_logdet`): minus the coding rate of each view's states per
   coordinate, a log-determinant spread term after Y. Yu, K. H. R. Chan, C. You, C. Song and
   Y. Ma, "Learning Diverse and Discriminative Representations via the Principle of Maximal
   Coding Rate Reduction" (MCR^2, NeurIPS 2020) and the total coding rate of EMP-SSL (S. Tong,
   Y. Chen, Y. Ma, Y. LeCun, arXiv:2304.03977, 2023), on the batch covariance
   ``C_v = 1/N sum_n (s_{v,n} - mean_v)(s_{v,n} - mean_v)^T`` of view ``v``::

       logdet = - 1 / V * sum_v 1 / (2 d) * log det(I_d + d / eps^2 * C_v)

   (MCR^2's ``R = 1/2 log det(I + d / (N eps^2) Z Z^T)`` on the centred states, divided by
   ``d``; ``eps^2`` is ``logdet_eps2``). Minimising it spreads the states over all ``d``
   directions; ``budget`` keeps that spread bounded. For an isotropic batch ``C = sigma^2 I``
   it is ``-1/2 log(1 + d sigma^2 / eps^2)``;
7. ``loss = (1 - lamb) * pred + lamb * sigreg + budget_coeff * budget + logdet_coeff * logdet``.

``budget`` and ``logdet`` are this library's definitions: the seed names them (a
budget/constraint regulariser, a projected-covariance spread regulariser) without their formulas.
Both use each process's own batch. The seed's diagnostics are logged too (detached; of the
context states and of the global targets' integration): ``q_pr``, ``p_pr``, ``q_std_min``,
``q2``, ``p2``, ``V_var``, ``energy_drift``
(:func:`levyjepa.methods.hamiltonian_states.state_diagnostics`).

Outputs: ``emb`` ``(N*G, E)`` (global views, the online probe's), ``tokens`` and
``tokens_proj`` ``(N*G, H', W', ...)`` of the global views (so a ``levy2d`` prior attaches),
``state`` ``(V, N, d)`` (every view's state). Precision: the states, the integration and the
terms are computed in float32 under the loop's bf16 autocast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from levyjepa.core.arg_checks import check_positive_int
from levyjepa.core.registry import METHODS, PRIORS
from levyjepa.encoders.heads import projector
from levyjepa.methods.base import Method, MethodNeeds, MethodOutput, encode_groups, full_precision
from levyjepa.methods.hamiltonian import Potential, leapfrog
from levyjepa.methods.hamiltonian_states import check_match, matched, state_diagnostics


def energy_budget(state: torch.Tensor, *, budget_max: float) -> torch.Tensor:
    """``mean_{v,n} max(0, |s_{v,n}|^2 / d - budget_max)^2`` of states ``state`` ``(V, N, d)``
    (or ``(N, d)``): a quadratic hinge on each state's mean squared coordinate."""
    mean_square = state.square().mean(-1)
    return F.relu(mean_square - budget_max).square().mean()


def coding_rate_logdet(state: torch.Tensor, *, eps2: float) -> torch.Tensor:
    """``-mean_v 1/(2d) log det(I + d / eps2 * C_v)``, ``C_v`` the batch covariance (over ``N``,
    divided by ``N``) of view ``v``'s states ``state`` ``(V, N, d)`` (or ``(N, d)``).

    The matrix is symmetric positive definite (``I`` plus a covariance): its log-determinant is
    twice the sum of the logs of its Cholesky factor's diagonal.
    """
    if state.dim() == 2:
        state = state.unsqueeze(0)
    _, n, d = state.shape
    centred = state - state.mean(1, keepdim=True)
    cov = centred.transpose(1, 2) @ centred / n  # (V, d, d)
    eye = torch.eye(d, dtype=state.dtype, device=state.device)
    chol = torch.linalg.cholesky(eye + (d / eps2) * cov)
    logdet = 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (V,)
    return -(logdet / (2 * d)).mean()


@METHODS.register("hjepa_views", runtime=("encoder", "seed"))
class HJEPAViews(Method):
    """HJEPA on the views of an image (see the module docstring).

    Args:
        encoder: The built encoder (given by the runner; the width of its ``emb`` sizes
            ``state_proj``).
        seed: The run's seed (given by the runner; nothing is drawn at random here).
        state_dim: Width ``S`` of ``q`` and of ``p``.
        state_hidden: Hidden width of ``state_proj``.
        dt: Leapfrog step size.
        steps: Leapfrog steps from the context to a global target.
        local_steps: Leapfrog steps from the context to a local target (``None``: ``steps``).
        damping: Momentum damping rate (0: energy-conserving flow).
        base_coeff: Coefficient of the potential's harmonic well.
        residual_scale: Scale of its learnable residual MLP.
        potential_hidden: Hidden width of that MLP.
        match: State coordinates ``pred`` compares: ``q``, ``p`` or ``qp``.
        lamb: SIGReg's weight in ``[0, 1]`` (``pred`` gets ``1 - lamb``).
        sigreg: The SIGReg section (``{name: sigreg, slices: 256}``; any prior on ``(V, N,
            d)``).
        budget_max: Ceiling of a state's mean squared coordinate (``> 0``).
        budget_coeff: Weight of ``budget`` (``>= 0``).
        logdet_coeff: Weight of ``logdet`` (``>= 0``).
        logdet_eps2: ``eps^2`` of the coding rate (``> 0``).

    Raises:
        ValueError: one line naming the parameter and its valid range.
    """

    needs = MethodNeeds(min_views=2, local_views=True, proj=False)
    outputs = ("emb", "tokens", "tokens_proj", "state")

    def __init__(
        self,
        *,
        encoder: nn.Module,
        seed: int = 0,
        state_dim: int = 16,
        state_hidden: int = 256,
        dt: float = 0.1,
        steps: int = 4,
        local_steps: Optional[int] = None,
        damping: float = 0.0,
        base_coeff: float = 1.0,
        residual_scale: float = 0.1,
        potential_hidden: int = 64,
        match: str = "qp",
        lamb: float = 0.02,
        sigreg: Optional[Mapping[str, Any]] = None,
        budget_max: float = 2.0,
        budget_coeff: float = 1.0,
        logdet_coeff: float = 0.01,
        logdet_eps2: float = 0.5,
    ) -> None:
        super().__init__()
        for name, value in (("state_dim", state_dim), ("state_hidden", state_hidden),
                            ("steps", steps)):
            check_positive_int(name, value)
        if local_steps is not None:
            check_positive_int("local_steps", local_steps)
        for name, value in (("dt", dt), ("budget_max", budget_max),
                            ("logdet_eps2", logdet_eps2)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        for name, value in (("damping", damping), ("budget_coeff", budget_coeff),
                            ("logdet_coeff", logdet_coeff)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        check_match(match)
        if not 0.0 <= lamb <= 1.0:
            raise ValueError(f"lamb must be in [0, 1], got {lamb}")
        width = getattr(encoder, "emb_dim", None)
        if not isinstance(width, int):
            raise ValueError(f"hjepa_views reads the encoder's pooled emb and needs its width "
                             f"(encoder.emb_dim); {type(encoder).__name__} has none")
        self.seed, self.state_dim = int(seed), int(state_dim)
        self.dt, self.steps, self.damping = float(dt), int(steps), float(damping)
        self.local_steps = int(local_steps) if local_steps is not None else self.steps
        self.match, self.lamb = match, float(lamb)
        self.budget_max, self.budget_coeff = float(budget_max), float(budget_coeff)
        self.logdet_coeff, self.logdet_eps2 = float(logdet_coeff), float(logdet_eps2)
        self.state_proj = projector(width, state_hidden, 2 * state_dim, nn.BatchNorm1d)
        self.potential = Potential(dim=state_dim, hidden=potential_hidden,
                                   base_coeff=base_coeff, residual_scale=residual_scale)
        self.sigreg: nn.Module = PRIORS.build(dict(sigreg or {"name": "sigreg"}),
                                              where="method.sigreg")

    def states(self, groups: Sequence[Any], n: int) -> torch.Tensor:
        """``(V, N, 2S)`` states of every view (global views first, then local ones), through
        ``state_proj`` in one batch (its BatchNorm normalises all views together)."""
        sizes = [grp.emb.shape[0] for grp in groups]  # N * V_g rows each, row n * V_g + v
        flat = self.state_proj(torch.cat([grp.emb.float() for grp in groups]))
        return torch.cat([s.unflatten(0, (n, -1)).transpose(0, 1) for s in flat.split(sizes)])

    def integrate(self, q: torch.Tensor, p: torch.Tensor, steps: int) -> Any:
        """The leapfrog integration of ``(q, p)`` ``(N, S)`` by ``steps`` steps of ``dt``."""
        return leapfrog(self.potential, q, p, dt=self.dt, steps=steps, damping=self.damping)

    def forward(self, encoder: nn.Module, views: Sequence[torch.Tensor], *,
                step: int) -> MethodOutput:
        """Terms ``pred``, ``sigreg``, ``budget``, ``logdet``, ``loss`` and the diagnostics."""
        n, g = views[0].shape[:2]
        groups = encode_groups(encoder, views)
        first = groups[0]
        with full_precision(first.emb):
            state = self.states(groups, n)  # (G + L, N, 2S)
            if state.shape[0] < 2:
                raise ValueError("hjepa_views needs a target view: 2 global views or local views")
            q0, p0 = state[0].chunk(2, -1)
            path = self.integrate(q0, p0, self.steps)
            # the integrated context, once per target: global targets, then local ones
            ends = [path] * (g - 1)
            if state.shape[0] > g:
                local = path if self.local_steps == self.steps \
                    else self.integrate(q0, p0, self.local_steps)
                ends += [local] * (state.shape[0] - g)
            prediction = torch.stack([matched(e.q, e.p, self.match) for e in ends])
            q, p = state[1:].chunk(2, -1)
            pred = F.mse_loss(prediction, matched(q, p, self.match))
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.lamb > 0):
                sigreg = self.sigreg(state, step=step)  # at lamb 0: logged, no graph
            budget = energy_budget(state, budget_max=self.budget_max)
            logdet = coding_rate_logdet(state, eps2=self.logdet_eps2)
            loss = (1 - self.lamb) * pred + self.budget_coeff * budget \
                + self.logdet_coeff * logdet
            if self.lamb > 0:
                loss = loss + self.lamb * sigreg
            terms = {"pred": pred, "sigreg": sigreg, "budget": budget, "logdet": logdet,
                     "loss": loss}
            with torch.no_grad():
                terms.update(state_diagnostics(self.potential, q0.detach(), p0.detach(), path))
        outputs = {"emb": first.emb, "tokens": first.tokens, "state": state}
        if first.tokens_proj is not None:
            outputs["tokens_proj"] = first.tokens_proj
        return MethodOutput(terms=terms, outputs=outputs)

    def extra_repr(self) -> str:
        return (f"state_dim={self.state_dim}, dt={self.dt:g}, steps={self.steps}, "
                f"local_steps={self.local_steps}, damping={self.damping:g}, match={self.match}, "
                f"lamb={self.lamb:g}, budget_max={self.budget_max:g}, "
                f"budget_coeff={self.budget_coeff:g}, logdet_coeff={self.logdet_coeff:g}, "
                f"logdet_eps2={self.logdet_eps2:g}")
