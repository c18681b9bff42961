"""Separable Hamiltonian dynamics on a latent state ``(q, p)``: potential and integrators.

The predictor of HJEPA (the Hamiltonian JEPA of seed ``003``) moves a state ``(q, p)``, each
``(B, K)``, along the flow of

    H(q, p) = |p|^2 / 2 + V(q),    V(q) = base_coeff * |q|^2 / 2 + residual_scale * MLP(q),

a base harmonic well plus a learnable residual potential (:class:`Potential`). The flow is
integrated by the leapfrog (Störmer-Verlet, kick-drift-kick) scheme, which is symplectic,
time-reversible and second order (E. Hairer, C. Lubich, G. Wanner, "Geometric Numerical
Integration", 2006, section I.1.4; its energy error stays bounded over exponentially long
times, section IX.8), one step of size ``dt``::

    p <- p - dt/2 * grad V(q)
    q <- q + dt * p
    p <- p - dt/2 * grad V(q)

Optional ``damping`` gamma multiplies ``p`` by ``exp(-gamma dt / 2)`` before and after each
step (a symmetric splitting of ``dp/dt = -gamma p``: the scheme stays reversible under ``dt ->
-dt``, and conformal-symplectic). ``grad V`` is :func:`torch.autograd.grad` of ``V`` with
``create_graph=True``, so a loss on the end state trains the potential through the
integration (a second-order gradient). :func:`euler` is explicit Euler, for comparison only.

Precision: the integration is computed in float32 even under the loop's bf16 autocast
(:func:`leapfrog` disables autocast inside; the state is small). ``torch.compile``: the
integrator is excluded from compilation (:func:`torch.compiler.disable`; compiled graphs do not
support the double backward through ``autograd.grad``); the encoder around it still compiles.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import nn

from levyjepa.core.arg_checks import check_positive_int


class Potential(nn.Module):
    """``V(q) = base_coeff * |q|^2 / 2 + residual_scale * MLP(q)`` per row of ``q`` ``(B, K)``.

    The MLP is ``K -> hidden -> hidden -> 1`` with smooth ``tanh`` activations (its gradient,
    the force, must itself be differentiable); its last layer has no bias (a constant shifts
    no force, so it would never get a gradient) and starts at zero, so training starts from
    the harmonic well.

    Args:
        dim: State width ``K``.
        hidden: Hidden width of the residual MLP.
        base_coeff: Coefficient of the harmonic well (``>= 0``).
        residual_scale: Scale of the residual MLP (``>= 0``; 0: no learnable potential).
    """

    def __init__(self, *, dim: int, hidden: int = 64, base_coeff: float = 1.0,
                 residual_scale: float = 0.1) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden)):
            check_positive_int(f"potential {name}", value)
        for name, value in (("base_coeff", base_coeff), ("residual_scale", residual_scale)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.base_coeff, self.residual_scale = float(base_coeff), float(residual_scale)
        self.mlp: Optional[nn.Module] = None  # none at residual_scale 0: no unused parameter
        if self.residual_scale > 0:
            self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(),
                                     nn.Linear(hidden, hidden), nn.Tanh(),
                                     nn.Linear(hidden, 1, bias=False))
            nn.init.zeros_(self.mlp[-1].weight)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """``V(q)`` ``(B,)`` of states ``q`` ``(B, K)``."""
        base = 0.5 * self.base_coeff * q.square().sum(-1)
        if self.mlp is None:
            return base
        return base + self.residual_scale * self.mlp(q).squeeze(-1)


def force(potential: nn.Module, q: torch.Tensor) -> torch.Tensor:
    """``-grad V(q)`` ``(B, K)``; differentiable (``create_graph=True``) unless called under
    ``torch.no_grad`` (then computed all the same, and detached)."""
    outer = torch.is_grad_enabled()
    with torch.enable_grad():
        if not q.requires_grad:
            q = q.detach().requires_grad_(True)
        energy = potential(q).sum()
        (grad,) = torch.autograd.grad(energy, q, create_graph=outer)
    return -grad


def hamiltonian(potential: nn.Module, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``H(q, p) = |p|^2 / 2 + V(q)`` ``(B,)``."""
    return 0.5 * p.square().sum(-1) + potential(q)


class Trajectory(NamedTuple):
    """End state of an integration and its energies.

    Attributes:
        q: ``(B, K)`` end position.
        p: ``(B, K)`` end momentum.
        energy_start: ``(B,)`` ``H`` at the start.
        energy_end: ``(B,)`` ``H`` at the end.
    """

    q: torch.Tensor
    p: torch.Tensor
    energy_start: torch.Tensor
    energy_end: torch.Tensor


@torch.compiler.disable
def leapfrog(potential: nn.Module, q: torch.Tensor, p: torch.Tensor, *, dt: float | torch.Tensor,
             steps: int | torch.Tensor, damping: float = 0.0) -> Trajectory:
    """Integrate ``(q, p)`` by ``steps`` leapfrog steps of size ``dt`` (see the module docstring).

    Args:
        potential: ``V``, a module mapping ``(B, K)`` to ``(B,)``.
        q: ``(B, K)`` start position.
        p: ``(B, K)`` start momentum.
        dt: Step size (negative: backwards in time), a float or ``(B,)`` per row.
        steps: Number of steps, an int or ``(B,)`` per row (rows that are done stay put).
        damping: Momentum damping rate ``gamma >= 0``.

    Returns:
        The end state and the energy at both ends (without gradient: diagnostics), in float32
        (or the input's wider dtype).
    """
    if damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping}")
    dtype = torch.promote_types(q.dtype, torch.float32)
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, p = q.to(dtype), p.to(dtype)
        dt = torch.as_tensor(dt, dtype=dtype, device=q.device).reshape(-1, 1).expand(q.shape[0], 1)
        steps = torch.as_tensor(steps, device=q.device).reshape(-1).expand(q.shape[0])
        if (steps < 0).any():
            raise ValueError(f"steps must be >= 0, got {steps.tolist()}")
        with torch.no_grad():  # diagnostics only: no graph kept
            start = hamiltonian(potential, q, p)
        shrink = torch.exp(-0.5 * damping * dt)
        for i in range(int(steps.max()) if steps.numel() else 0):
            live = (steps > i).unsqueeze(-1)  # while a row still has steps to go
            h = dt * live.to(dtype)
            factor = torch.where(live, shrink, torch.ones_like(shrink))
            p1 = p * factor
            p1 = p1 + 0.5 * h * force(potential, q)
            q = q + h * p1
            p1 = p1 + 0.5 * h * force(potential, q)
            p = p1 * factor
        with torch.no_grad():
            end = hamiltonian(potential, q, p)
        return Trajectory(q=q, p=p, energy_start=start, energy_end=end)


def euler(potential: nn.Module, q: torch.Tensor, p: torch.Tensor, *, dt: float,
          steps: int) -> Trajectory:
    """Explicit Euler (``q += dt p``, ``p += dt F(q)`` from the same old state), not symplectic:
    its energy grows without bound on an oscillator. For comparison with :func:`leapfrog`."""
    start = hamiltonian(potential, q, p)
    for _ in range(steps):
        q, p = q + dt * p, p + dt * force(potential, q)
    return Trajectory(q=q, p=p, energy_start=start, energy_end=hamiltonian(potential, q, p))
