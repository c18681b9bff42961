"""The training objective: LeJEPA (invariance + SIGReg) plus a Lévy prior on the token field.

docs/method.md, the objective, with the seed's knob names::

    inv      = mean_{v,n,k} (proj[v,n,k] - mean_v proj[v,n,k])^2
    lejepa   = gamma * within + lamb * sigreg + kappa * (1 - lamb) * inv

``lamb`` trades SIGReg against invariance as in LeJEPA (Balestriero & LeCun, 2025); ``kappa``
scales the invariance term alone (``kappa = 0`` removes it, the seed's experiment 2); ``gamma``
weights the Lévy prior (``gamma = 0`` is the LeJEPA baseline). When a Lévy prior is configured,
``within`` is computed and logged even with ``gamma = 0``, so a baseline run shows how far its
token field drifts from the prior; it is then computed without gradient (it is not part of the
loss), so the backward pass skips the prior and the token projector.

``within_in_loss = True`` reproduces the seed instead: with ``gamma = 0`` the seed still adds
``gamma * within`` to the loss, graph included, so the token projector receives gradients that
are exactly zero. AdamW's decoupled weight decay then shrinks the projector by
``(1 - lr_t * weight_decay)`` every step (its moments stay zero, so there is no other update):
x0.47 over experiment 1 and x0.93 over experiment 2. The seed's rising ``within`` curve under
``gamma = 0`` is partly this decay, so the four seed recipes set the option; the cheaper default
leaves the projector at its initial weights. Nothing else changes: the other parameters receive
bit-identical gradients, so ``test/acc`` is the same either way.
``orig_lejepa_loss = lamb * sigreg + (1 - lamb) * inv`` is LeJEPA's own loss, logged for
comparison with the seed.

In a recipe the three knobs are ``objective.lamb``, ``objective.kappa`` and
``objective.gamma`` (the seed's ``+lamb``, ``+kappa``, ``+gamma``); ``sigreg`` is the prior
``objective.sigreg`` applied to ``proj`` and ``within`` the prior ``objective.levy`` applied to
``tokens_proj`` (the seed's ``+levy_lam``, ``+levy_alpha``, ``+levy_sigma`` are
``objective.levy.lam``, ``alpha``, ``sigma``). The seed's four runs are
``recipes/image_*.yaml``; :mod:`levyjepa.reproduce` runs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import torch
from torch import nn

from levyjepa.encoders.output import EncoderOutput
from levyjepa.registry import PRIORS


class LeJEPAObjective(nn.Module):
    """Combine the invariance term and the priors into ``lejepa_loss``.

    Args:
        lamb: SIGReg weight; the invariance term gets ``kappa * (1 - lamb)``.
        kappa: Extra weight of the invariance term.
        gamma: Weight of the Lévy prior.
        sigreg: Prior applied to ``proj`` ``(V, N, K)``.
        levy: Prior applied to ``tokens_proj``, or ``None``.
        within_in_loss: With ``gamma = 0``, still add ``gamma * within`` with its graph (the
            seed's behaviour: the token projector then decays under AdamW's weight decay).
    """

    def __init__(
        self,
        *,
        lamb: float,
        kappa: float,
        gamma: float,
        sigreg: nn.Module,
        levy: Optional[nn.Module] = None,
        within_in_loss: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= lamb <= 1.0:
            raise ValueError(f"lamb must be in [0, 1], got {lamb}")
        if kappa < 0 or gamma < 0:
            raise ValueError(f"kappa and gamma must be >= 0, got {kappa}, {gamma}")
        if gamma > 0 and levy is None:
            raise ValueError("gamma > 0 needs a levy prior")
        self.lamb, self.kappa, self.gamma = lamb, kappa, gamma
        self.sigreg = sigreg
        self.levy = levy
        self.within_in_loss = within_in_loss

    @property
    def reads_tokens(self) -> bool:
        """Whether a term reads ``tokens_proj`` (the encoder then builds its token projector)."""
        return self.levy is not None

    def forward(self, out: EncoderOutput, *, step: int) -> dict[str, torch.Tensor]:
        """Compute every term; ``lejepa_loss`` is the one to optimise.

        Args:
            out: Encoder output for the batch.
            step: Global optimisation step (seeds the priors' random directions).

        Returns:
            Scalars ``inv``, ``sigreg``, ``lejepa_loss``, ``orig_lejepa_loss`` and, with a Lévy
            prior, ``within``.
        """
        proj = out.proj.float()
        inv = (proj - proj.mean(0, keepdim=True)).square().mean()
        sigreg = self.sigreg(proj, step=step)
        terms = {
            "inv": inv,
            "sigreg": sigreg,
            "orig_lejepa_loss": self.lamb * sigreg + (1 - self.lamb) * inv,
        }
        lejepa = self.lamb * sigreg + self.kappa * (1 - self.lamb) * inv
        if self.levy is not None:
            if out.tokens_proj is None:
                raise ValueError("the levy prior needs tokens_proj, but the encoder returned None")
            if self.gamma > 0 or self.within_in_loss:
                within = self.levy(out.tokens_proj, step=step)
                lejepa = lejepa + self.gamma * within
            else:  # logged only: no graph, so backward skips the prior and the token projector
                with torch.no_grad():
                    within = self.levy(out.tokens_proj, step=step)
            terms["within"] = within
        terms["lejepa_loss"] = lejepa
        return terms


def build_objective(section: Mapping[str, Any]) -> LeJEPAObjective:
    """Build the objective from a recipe's ``objective`` section."""
    levy = section.get("levy")
    return LeJEPAObjective(
        lamb=section["lamb"],
        kappa=section["kappa"],
        gamma=section["gamma"],
        sigreg=PRIORS.build(section["sigreg"], where="objective.sigreg"),
        levy=PRIORS.build(levy, where="objective.levy") if levy is not None else None,
        within_in_loss=section.get("within_in_loss", False),
    )
