"""Recipe keys that moved, refused with one line naming where they went.

A recipe (or override, or the saved recipe of an older run directory) that still sets a moved
key is refused before the schema sees it, so the message says what to write instead of only
"unknown key". The table is data: add a row when a key moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from levyjepa.core.errors import ConfigError

MOVED: dict[str, str] = {
    # issue 14: the hard-wired objective became a method plus attached priors
    "objective.lamb": "method.lamb (method: {name: lejepa, lamb: ...})",
    "objective.kappa": "method.kappa (method: {name: lejepa, kappa: ...})",
    "objective.sigreg": "method.sigreg",
    "objective.gamma": "priors.within.weight (the Lévy prior's weight)",
    "objective.levy": "priors.within (priors: {within: {name: levy2d, input: tokens_proj, "
                      "weight: <gamma>, ...}})",
    "objective.within_in_loss": "priors.within.graph_at_zero_weight",
    "objective.probe_classes": "trainer.probe_classes",
    "objective": "method (method: {name: lejepa, lamb, kappa, sigreg}) and priors "
                 "(priors: {within: {name: levy2d, input: tokens_proj, weight: <gamma>, ...}})",
}
"""Old dotted key -> where it is now (the most specific old key is reported)."""


def refuse_moved_keys(tree: Any, *, origin: str) -> None:
    """Raise if ``tree`` (a recipe mapping or a parsed override) sets a moved key.

    Raises:
        ConfigError: ``<origin>: <old key> moved to <new key>``.
    """
    from omegaconf import DictConfig, OmegaConf

    if isinstance(tree, DictConfig):
        tree = OmegaConf.to_container(tree, resolve=False)
    for key in sorted(_dotted_keys(tree), key=lambda k: -k.count(".")):  # deepest first
        for old in sorted(MOVED, key=len, reverse=True):  # the most specific first
            if key == old or key.startswith(f"{old}."):
                raise ConfigError(f"{origin}: {old} moved to {MOVED[old]}")


def _dotted_keys(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, Mapping):
        return [prefix.rstrip(".")] if prefix else []
    keys = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        keys.append(name)
        if isinstance(value, Mapping):
            keys += _dotted_keys(value, f"{name}.")
    return keys
