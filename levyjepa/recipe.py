"""Loading recipes: ``base:`` inheritance, dotlist overrides, schema and component checks.

A recipe is a YAML file. ``base: other.yaml`` (a path relative to the recipe) names a recipe it
extends: the child's keys are merged over the base's. A component section (``data``,
``encoder``, ``objective.sigreg``, ``objective.levy``) whose ``name`` changes in the child, or in
an override, is replaced as a whole, so the old component's parameters do not leak into the new
one. Command-line overrides are OmegaConf dotlist items (``trainer.epochs=3``).

Every file is checked against :class:`levyjepa.schema.Recipe` as it is read, so a misspelt key
or a wrong type is reported with the file it is in; every component section is checked against
the registered component's constructor once the recipe's plugins are imported.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from levyjepa.errors import ConfigError
from levyjepa.schema import (
    DATA_LOADER_KEYS,
    DEVICES,
    PRECISIONS,
    TRACKERS,
    WANDB_MODES,
    Recipe,
)

# Component sections: dotted key -> registry attribute name on the ``levyjepa`` package.
COMPONENT_SECTIONS: dict[str, str] = {
    "data": "DATA",
    "encoder": "ENCODERS",
    "objective.sigreg": "PRIORS",
    "objective.levy": "PRIORS",
}


def load_recipe(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> DictConfig:
    """Load, merge, validate and resolve a recipe.

    Args:
        path: The recipe file.
        overrides: Dotlist items ``key=value`` applied last.

    Returns:
        The resolved recipe, typed by :class:`levyjepa.schema.Recipe`.

    Raises:
        ConfigError: with one line naming the key and the file (or override) at fault.
    """
    from levyjepa.plugins import load_plugins

    path = Path(path)
    cfg = _load_file(path, chain=())
    for item in overrides:  # one at a time, so an error names the override at fault
        cfg = _merge(cfg, _parse_override(item), origin=f"{path}: override '{item}'")
    if cfg.name is None:
        cfg.name = path.stem
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: {_describe(err)}") from None
    load_plugins(list(cfg.plugins))
    check_recipe(cfg, origin=str(path))
    return cfg


def check_recipe(cfg: DictConfig, *, origin: str) -> None:
    """Check values the schema's types cannot express, and every component section.

    Args:
        cfg: A merged recipe.
        origin: The recipe file, named in messages.
    """
    import levyjepa

    def fail(msg: str) -> None:
        raise ConfigError(f"{origin}: {msg}")

    choices = {
        "trainer.precision": (cfg.trainer.precision, PRECISIONS),
        "trainer.device": (cfg.trainer.device, DEVICES),
        "log.wandb_mode": (cfg.log.wandb_mode, WANDB_MODES),
    }
    for key, (value, valid) in choices.items():
        if value not in valid:
            fail(f"{key}: {value!r} is not one of {', '.join(valid)}")
    for tracker in cfg.log.trackers:
        if tracker not in TRACKERS:
            fail(f"log.trackers: unknown tracker {tracker!r}; valid: {', '.join(TRACKERS)}")
    positive = {
        "trainer.epochs": cfg.trainer.epochs,
        "trainer.eval_every": cfg.trainer.eval_every + 1,  # 0 is allowed: final evaluation only
        "trainer.keep_checkpoints": cfg.trainer.keep_checkpoints,
        "log.every": cfg.log.every,
    }
    if cfg.trainer.max_steps is not None:
        positive["trainer.max_steps"] = cfg.trainer.max_steps
    if cfg.trainer.cpu_threads is not None:
        positive["trainer.cpu_threads"] = cfg.trainer.cpu_threads
    if cfg.trainer.checkpoint_every is not None:
        positive["trainer.checkpoint_every"] = cfg.trainer.checkpoint_every
    for key, value in positive.items():
        if value < 1:
            fail(f"{key} must be >= 1, got {value}")
    if cfg.log.diagnostics_every < 0:
        fail(f"log.diagnostics_every must be >= 0 (0: off), got {cfg.log.diagnostics_every}")
    for key in ("lamb", "kappa", "gamma"):
        if cfg.objective[key] < 0:
            fail(f"objective.{key} must be >= 0, got {cfg.objective[key]}")
    if not 0 <= cfg.objective.lamb <= 1:
        fail(f"objective.lamb must be in [0, 1], got {cfg.objective.lamb}")
    if cfg.objective.gamma > 0 and cfg.objective.levy is None:
        fail("objective.gamma > 0 needs an objective.levy prior section")

    data = OmegaConf.to_container(cfg.data)
    assert isinstance(data, dict)
    for key, kind in DATA_LOADER_KEYS.items():
        if key not in data:
            fail(f"data.{key} is required")
        value = data[key]
        if not isinstance(value, kind) or isinstance(value, bool) or value < (key != "workers"):
            fail(f"data.{key} must be a {'non-negative' if key == 'workers' else 'positive'} "
                 f"{kind.__name__}, got {value!r}")
    for where, registry_name in COMPONENT_SECTIONS.items():
        section = OmegaConf.select(cfg, where)
        if section is None and where == "objective.levy":
            continue
        section = OmegaConf.to_container(section) if section is not None else {}
        if where == "data":
            section = {k: v for k, v in section.items() if k not in DATA_LOADER_KEYS}
        registry = getattr(levyjepa, registry_name)
        try:
            registry.check(section, where=where)
        except ConfigError as err:
            fail(str(err))


def _load_file(path: Path, chain: tuple[Path, ...]) -> DictConfig:
    """Read one recipe file and its bases, each validated against the schema."""
    if not path.is_file():
        raise ConfigError(f"recipe file not found: {path}")
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError(f"{path}: 'base' inheritance cycle: {cycle}")
    try:
        raw = OmegaConf.load(path)
    except Exception as err:  # YAML syntax errors come in several exception types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{path}: not a valid YAML recipe: {first}") from None
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping, got a list")
    base = raw.pop("base", None)
    if base is None:
        return _merge(OmegaConf.structured(Recipe), raw, origin=str(path))
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be a file name, got {base!r}")
    parent = _load_file(path.parent / base, chain=(*chain, resolved))
    return _merge(parent, raw, origin=str(path))


def _parse_override(item: str) -> DictConfig:
    if "=" not in item or item.startswith("="):
        raise ConfigError(f"override {item!r} is not of the form key=value")
    try:
        return OmegaConf.from_dotlist([item])
    except OmegaConfBaseException as err:
        raise ConfigError(f"override {item!r}: {_describe(err)}") from None


def _merge(cfg: DictConfig, update: DictConfig, *, origin: str) -> DictConfig:
    """Merge ``update`` over ``cfg``, replacing component sections whose name changes."""
    for where in COMPONENT_SECTIONS:
        new = OmegaConf.select(update, where)
        old = OmegaConf.select(cfg, where)
        if (
            isinstance(new, DictConfig)
            and isinstance(old, DictConfig)
            and "name" in new
            and new.get("name") != old.get("name")
        ):
            OmegaConf.update(cfg, where, {}, merge=False)
    try:
        merged = OmegaConf.merge(cfg, update)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{origin}: {_describe(err)}") from None
    assert isinstance(merged, DictConfig)
    return merged


def _describe(err: OmegaConfBaseException) -> str:
    """One line from an OmegaConf error: the key, what is wrong, and the valid keys."""
    key = getattr(err, "full_key", None) or ""
    msg = str(getattr(err, "msg", None) or err).strip().splitlines()[0]
    if isinstance(err, ConfigKeyError) and key:
        parent, _, leaf = key.rpartition(".")
        valid = _schema_keys(parent)
        close = difflib.get_close_matches(leaf, valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{key}'{hint}; valid keys{' of ' + parent if parent else ''}: " + (
            ", ".join(valid)
        )
    return f"{key}: {msg}" if key else msg


def _schema_keys(section: str) -> list[str]:
    node: Any = OmegaConf.structured(Recipe)
    for part in filter(None, section.split(".")):
        node = node.get(part)
        if not isinstance(node, DictConfig):
            return []
    return list(node.keys())
