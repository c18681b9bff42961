"""Priors attached to a method's named outputs by the recipe's ``priors`` section.

Each entry of the section is keyed by the name its term is logged under (``train/<term>``)::

    priors:
      within: {name: levy2d, input: tokens_proj, weight: 0.2, jumps: laplace, lam: 2.0}
      sigreg_emb: {name: sigreg, input: emb, weight: 0.05}

``name`` selects a registered prior (:data:`levyjepa.PRIORS`, plugins included), ``input`` one
of the method's outputs (:attr:`levyjepa.methods.Method.outputs`), ``weight`` (>= 0) its weight in
the loss; the other keys are the prior's own parameters. The optimised loss is the method's
``loss`` plus ``sum_term weight * prior(outputs[input])``. A prior with ``weight: 0`` is still
computed and logged, without gradient, so a baseline run shows how far its field drifts from
the prior; ``graph_at_zero_weight: true`` adds ``0 * prior`` with its graph instead, as the
seed does with ``gamma = 0`` (the token projector then receives zero gradients and AdamW's
decoupled weight decay shrinks it; the four seed recipes set it). Priors run in float32,
outside the loop's autocast. Keying by term makes overrides plain:
``priors.within.weight=0`` or ``priors.within=null`` (removes it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import PRIORS

ENTRY_KEYS = ("input", "weight", "graph_at_zero_weight")
"""Keys of a ``priors`` entry that the attachment reads (the rest go to the prior)."""

RESERVED_TERMS = ("loss", "probe_loss", "grad_norm", "lr")
"""Term names the loop logs itself; a prior may not be logged under them."""


@dataclass(frozen=True)
class Attachment:
    """Where a prior reads and how much it weighs."""

    input: str
    weight: float
    graph_at_zero_weight: bool


def check_prior_entry(term: str, entry: Any, *, outputs: tuple[str, ...], method: str
                      ) -> tuple[Attachment, dict[str, Any]]:
    """Validate ``priors.<term>``; returns its attachment and the prior's own section.

    Raises:
        ConfigError: naming the key and, where there are some, the valid choices.
    """
    at = f"priors.{term}"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", term) or term in RESERVED_TERMS:
        raise ConfigError(f"{at}: a prior's term name must be an identifier other than "
                          f"{', '.join(RESERVED_TERMS)}")
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{at}: expected {{name: <prior>, input: <output>, weight: <w>, ...}}, "
                          f"got {entry!r}")
    for key in ("name", "input", "weight"):
        if key not in entry:
            raise ConfigError(f"{at}: missing '{key}' ({{name: <prior>, input: <output>, "
                              f"weight: <w>, ...}})")
    source, weight = entry["input"], entry["weight"]
    if source not in outputs:
        raise ConfigError(f"{at}.input: method '{method}' has no output {source!r}; its "
                          f"outputs: {', '.join(outputs) or 'none'}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
        raise ConfigError(f"{at}.weight must be a number >= 0, got {weight!r}")
    graph = entry.get("graph_at_zero_weight", False)
    if not isinstance(graph, bool):
        raise ConfigError(f"{at}.graph_at_zero_weight must be true or false, got {graph!r}")
    section = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    PRIORS.check(section, where=at)
    return Attachment(input=source, weight=float(weight), graph_at_zero_weight=graph), section


class AttachedPriors(nn.Module):
    """The recipe's priors, each applied to one named output of the method.

    Args:
        section: The recipe's ``priors`` mapping (``None`` entries are removed priors).
        outputs: The method's output names.
        method: The method's name (for messages).
    """

    def __init__(self, section: Optional[Mapping[str, Any]], *, outputs: tuple[str, ...],
                 method: str) -> None:
        super().__init__()
        self.priors = nn.ModuleDict()
        self.attachments: dict[str, Attachment] = {}
        for term, entry in (section or {}).items():
            if entry is None:
                continue
            attachment, prior = check_prior_entry(term, entry, outputs=outputs, method=method)
            self.priors[term] = PRIORS.build(prior, where=f"priors.{term}")
            self.attachments[term] = attachment

    def reads(self, output: str) -> bool:
        """Whether some prior reads ``output``."""
        return any(a.input == output for a in self.attachments.values())

    def first_on(self, output: str) -> Optional[nn.Module]:
        """The first prior attached to ``output`` (the diagnostics' and pictures' prior)."""
        for term, attachment in self.attachments.items():
            if attachment.input == output:
                return self.priors[term]
        return None

    def forward(self, terms: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor], *,
                step: int) -> dict[str, torch.Tensor]:
        """The method's ``terms`` with every prior's term added and ``loss`` updated.

        Args:
            terms: The method's scalar terms, ``loss`` among them.
            outputs: The method's named outputs.
            step: Global optimisation step (seeds the priors' randomness); with gradient
                accumulation, the micro-batch's draw index.

        Raises:
            ValueError: when a prior's term clashes with a method term, or its output is
                missing (an encoder built without ``tokens_proj``).
        """
        merged = dict(terms)
        loss = merged["loss"]
        for term, prior in self.priors.items():
            attachment = self.attachments[term]
            if term in merged:
                raise ValueError(f"priors.{term}: the method logs a term of that name already; "
                                 "rename the prior's entry")
            x = outputs.get(attachment.input)
            if x is None:
                raise ValueError(f"priors.{term} reads '{attachment.input}', which the method did "
                                 f"not return (outputs: {', '.join(outputs)})")
            with torch.autocast(device_type=x.device.type, enabled=False):
                if attachment.weight > 0 or attachment.graph_at_zero_weight:
                    value = prior(x, step=step)
                    loss = loss + attachment.weight * value
                else:  # logged only: no graph, so backward skips the prior and its inputs
                    with torch.no_grad():
                        value = prior(x, step=step)
            merged[term] = value
        merged["loss"] = loss
        return merged
