"""The Energy Transformer block: one energy, descended by its tokens for ``n_iters`` steps.

B. Hoover, Y. Liang, B. Pham, R. Panda, H. Strobelt, D. H. Chau, M. J. Zaki, D. Krotov,
"Energy Transformer", NeurIPS 2023 (arXiv:2302.07253). The tokens ``x`` (``N`` of width ``D``)
are normalised by an *energy layer norm* ``g = LN(x)``; the block's energy is
``E(g) = E_att(g) + E_hn(g)`` with

* ``E_att = -(1/beta) sum_h sum_C log sum_{B != C} exp(beta <K_hB, Q_hC>)``,
* ``E_hn = -(1/2) sum_B sum_mu relu(<xi_mu, g_B>)^2``

(keys ``K_{hB} = W^K_h g_B`` and queries ``Q_{hC} = W^Q_h g_C`` of ``H`` heads of width ``Y``,
no values; ``M`` Hopfield memories ``xi``) is lowered by ``x <- x - alpha dE/dg``, the same
weights at every step.

**Why the energy decreases.** ``g`` is the gradient of a convex Lagrangian,
``L(x) = D gamma sqrt(var(x) + eps) + <delta, x>`` (:meth:`EnergyLayerNorm.lagrangian`), so its
Jacobian ``dg/dx`` is the Hessian of ``L``: symmetric and positive semi-definite while
``gamma >= 0`` (here ``gamma = exp(log_gamma) > 0``). Along the flow ``dx/dt = -dE/dg``,
``dE/dt = (dE/dg)^T (dg/dx) (dx/dt) = -(dE/dg)^T (dg/dx) (dE/dg) <= 0``; a step of size
``alpha`` follows the flow to first order, so a small enough ``alpha`` keeps every step's energy
at most the previous one (tests/test_energy_transformer.py checks it at the default).

``dE/dg`` is computed in closed form (below), not by ``torch.autograd.grad``: the iteration is
then an ordinary differentiable computation, which runs the same under ``torch.no_grad`` (an EMA
teacher) and in training, without double backward. The test suite checks the closed form
against autograd of the energy.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from levyjepa.core.arg_checks import check_positive_int


class EnergyLayerNorm(nn.Module):
    """``g = gamma (x - mean(x)) / sqrt(var(x) + eps) + delta`` over the last axis, with one
    scalar ``gamma = exp(log_gamma) > 0`` and a bias ``delta`` of width ``D`` (Hoover et al.,
    2023, section 2): the gradient of the convex :meth:`lagrangian`.

    Args:
        width: ``D``.
        eps: Added to the variance.
    """

    def __init__(self, width: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        check_positive_int("width", width)
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = float(eps)
        self.log_gamma = nn.Parameter(torch.zeros(()))
        self.delta = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` to ``(..., D)``."""
        centred = x - x.mean(-1, keepdim=True)
        var = centred.square().mean(-1, keepdim=True)
        return self.log_gamma.exp() * centred * torch.rsqrt(var + self.eps) + self.delta

    def lagrangian(self, x: torch.Tensor) -> torch.Tensor:
        """``L(x) = D gamma sqrt(var(x) + eps) + <delta, x>``, ``(..., D)`` to ``(...)``: its
        gradient is :meth:`forward`, its Hessian ``dg/dx``."""
        var = (x - x.mean(-1, keepdim=True)).square().mean(-1)
        return x.shape[-1] * self.log_gamma.exp() * (var + self.eps).sqrt() + x @ self.delta


class EnergyBlock(nn.Module):
    """One Energy Transformer block (see the module docstring), iterated ``n_iters`` times.

    Weights are drawn ``N(0, 1 / D)``, so that at initialisation keys, queries and the memories'
    overlaps ``<xi_mu, g_B>`` are of order one for layer-normalised ``g``.

    Args:
        width: Token width ``D``.
        heads: Attention heads ``H``.
        head_dim: Width ``Y`` of each head's keys and queries.
        memories: Hopfield memories ``M``.
        n_iters: Descent steps.
        alpha: Step size.
        beta: Inverse temperature of the attention energy (``None``: ``1 / sqrt(Y)``).
        eps: The energy layer norm's ``eps``.
    """

    def __init__(self, *, width: int, heads: int, head_dim: int, memories: int, n_iters: int,
                 alpha: float, beta: Optional[float] = None, eps: float = 1e-5) -> None:
        super().__init__()
        for name, value in (("embed_dim", width), ("num_heads", heads), ("head_dim", head_dim),
                            ("memories", memories), ("n_iters", n_iters)):
            check_positive_int(name, value)
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        if beta is not None and not beta > 0:
            raise ValueError(f"beta must be > 0 (or null: 1/sqrt(head_dim)), got {beta}")
        self.n_iters, self.alpha = int(n_iters), float(alpha)
        self.beta = float(beta) if beta is not None else 1.0 / math.sqrt(head_dim)
        self.norm = EnergyLayerNorm(width, eps=eps)
        std = 1.0 / math.sqrt(width)
        self.w_k = nn.Parameter(torch.randn(heads, head_dim, width) * std)
        self.w_q = nn.Parameter(torch.randn(heads, head_dim, width) * std)
        self.xi = nn.Parameter(torch.randn(memories, width) * std)

    # ---- the energy and its gradient ---------------------------------------------------------

    def _attention(self, g: torch.Tensor, attend: Optional[torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys, queries, the masked scores ``(b, H, C, B)`` and which queries have a key."""
        k = torch.einsum("bnd,hyd->bhny", g, self.w_k)
        q = torch.einsum("bnd,hyd->bhny", g, self.w_q)
        scores = self.beta * q @ k.transpose(-1, -2)  # [b, h, C, B] = beta <K_B, Q_C>
        n = g.shape[1]
        allowed = ~torch.eye(n, dtype=torch.bool, device=g.device)[None]  # B != C
        if attend is not None:  # tokens outside attend are neither keys nor queries
            allowed = allowed & attend[:, None, :] & attend[:, :, None]
        has_key = allowed.any(-1)[:, None]  # (b, 1, C): a query with no key adds no term
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        scores = scores.masked_fill(~has_key[..., None], 0.0)
        return k, q, scores, has_key

    def energy(self, x: torch.Tensor, attend: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``E(LN(x))`` of ``(b, N, D)`` tokens, one value per sample ``(b,)``.

        Args:
            x: Tokens ``(b, N, D)``.
            attend: ``(b, N)`` bool, the tokens that take part in the attention energy
                (``None``: all); the Hopfield energy sums over every token.
        """
        g = self.norm(x)
        _, _, scores, has_key = self._attention(g, attend)
        e_att = -(torch.logsumexp(scores, -1) * has_key).sum((1, 2)) / self.beta
        e_hn = -0.5 * torch.relu(g @ self.xi.T).square().sum((1, 2))
        return e_att + e_hn

    def energy_grad(self, g: torch.Tensor, attend: Optional[torch.Tensor] = None
                    ) -> torch.Tensor:
        """``dE/dg`` ``(b, N, D)`` in closed form, at normalised tokens ``g``.

        With ``A`` the softmax of the scores over keys (``A[h, C, B]``),
        ``dE_att/dK_{hB} = -sum_C A[h, C, B] Q_{hC}``, ``dE_att/dQ_{hC} = -sum_B A[h, C, B]
        K_{hB}``, pulled back to ``g`` by ``W^K_h``, ``W^Q_h``;
        ``dE_hn/dg_B = -sum_mu relu(<xi_mu, g_B>) xi_mu``.
        """
        k, q, scores, has_key = self._attention(g, attend)
        weights = torch.softmax(scores, -1) * has_key[..., None]
        d_q = -(weights @ k)  # (b, h, C, Y)
        d_k = -(weights.transpose(-1, -2) @ q)  # (b, h, B, Y)
        d_att = (torch.einsum("bhny,hyd->bnd", d_q, self.w_q)
                 + torch.einsum("bhny,hyd->bnd", d_k, self.w_k))
        return d_att - torch.relu(g @ self.xi.T) @ self.xi

    # ---- the descent ---------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, attend: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``n_iters`` steps ``x <- x - alpha dE/dg`` from ``(b, N, D)`` tokens ``x``.

        Args:
            x: Tokens ``(b, N, D)``.
            attend: ``(b, N)`` bool, the tokens in the attention energy (``None``: all).

        Returns:
            The tokens after the last step, ``(b, N, D)``.
        """
        for _ in range(self.n_iters):
            x = x - self.alpha * self.energy_grad(self.norm(x), attend)
        return x

    def energies(self, x: torch.Tensor, attend: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The energy along the descent, ``(b, n_iters + 1)``: before the first step, then
        after each step."""
        values = [self.energy(x, attend)]
        for _ in range(self.n_iters):
            x = x - self.alpha * self.energy_grad(self.norm(x), attend)
            values.append(self.energy(x, attend))
        return torch.stack(values, 1)

    def extra_repr(self) -> str:
        heads, head_dim, width = self.w_k.shape
        return (f"width={width}, heads={heads}, head_dim={head_dim}, "
                f"memories={self.xi.shape[0]}, n_iters={self.n_iters}, alpha={self.alpha:g}, "
                f"beta={self.beta:g}")
