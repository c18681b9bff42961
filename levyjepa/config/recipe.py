"""Loading recipes: ``base:`` inheritance, dotlist overrides, schema and component checks.

A recipe is a YAML file. ``base: other.yaml`` (a path relative to the recipe) names a recipe it
extends: the child's keys are merged over the base's. A component section (``data``,
``encoder``, ``method``, ``method.sigreg``, each entry of ``priors``) whose ``name`` changes in
the child, or in an override, is replaced as a whole, so the old component's parameters do not
leak into the new one; its other keys must be given again, and a missing one is reported (all
of them at once) with a note that the section was replaced. The loader keys of ``data``
(``data.batch_size`` and ``data.workers``, :data:`levyjepa.config.schema.DATA_LOADER_KEYS`)
configure the loader, not the data source, and a prior entry's ``input``, ``weight`` and
``graph_at_zero_weight`` attach it rather than configure it, so they are kept across such a
replacement. Command-line overrides are OmegaConf dotlist
items (``trainer.epochs=3``).

Every file is checked against :class:`levyjepa.config.schema.Recipe` as it is read, so a misspelt
key or a wrong type is reported with the file it is in (a YAML syntax error or a duplicate key with
its line and column); every component section is checked against the registered component's
constructor once the recipe's plugins are imported, and the data against the encoder: the
views the data source makes must be what the encoder takes (``data.size`` and
``encoder.img_size``, ``data.frames_per_clip`` and ``encoder.num_frames``). The ``encoder``
keys ``pretrained`` and ``pretrained_strict`` are every encoder's
(:mod:`levyjepa.config.pretrained_keys`).
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from levyjepa.config.moved_keys import refuse_moved_keys
from levyjepa.config.moved_recipes import moved_recipe
from levyjepa.config.pretrained_keys import (
    absolute_pretrained,
    pretrained_problem,
    split_pretrained,
)
from levyjepa.config.recipe_yaml import yaml_error
from levyjepa.config.schema import (
    DATA_LOADER_KEYS,
    DEVICES,
    ON_NONFINITE,
    PRECISIONS,
    STRATEGIES,
    TRACKERS,
    WANDB_MODES,
    Recipe,
)
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import MissingParameters, Registry
from levyjepa.data.build import check_moved_data_keys, check_views_section, global_view_size
from levyjepa.methods.attached_priors import ENTRY_KEYS
from levyjepa.methods.build import check_priors_section

# Component sections: dotted key -> registry attribute name on the ``levyjepa`` package.
COMPONENT_SECTIONS: dict[str, str] = {
    "data": "DATA",
    "encoder": "ENCODERS",
    "method": "METHODS",
    "method.sigreg": "PRIORS",
    "views": "VIEWS",
}
# Optional component sections: checked when present.
OPTIONAL_SECTIONS = ("method.sigreg", "views")

# What the data source makes and what the encoder takes: (data key, encoder key) pairs of
# parameters that must agree when both components have them.
FIT_KEYS: tuple[tuple[str, str], ...] = (("size", "img_size"), ("frames_per_clip", "num_frames"))

# Replaced component sections: dotted key -> (old name, new name).
Replaced = dict[str, tuple[Any, Any]]


def load_recipe(path: str | os.PathLike[str], overrides: Sequence[str] = (), *,
                pretrained_file: bool = True) -> DictConfig:
    """Load, merge, validate and resolve a recipe.

    A relative ``encoder.pretrained`` path is made absolute (against the current directory).

    Args:
        path: The recipe file.
        overrides: Dotlist items ``key=value`` applied last.
        pretrained_file: Check that the ``encoder.pretrained`` file exists (off where the
            encoder's weights come from elsewhere: a trained run's recipe, a ``weights=`` file).

    Returns:
        The resolved recipe, typed by :class:`levyjepa.config.schema.Recipe`.

    Raises:
        ConfigError: with one line naming the key and the file (or override) at fault.
    """
    from levyjepa.config.plugins import load_plugins

    path = Path(path)
    replaced: Replaced = {}
    cfg = _load_file(path, chain=(), replaced=replaced)
    for item in overrides:  # one at a time, so an error names the override at fault
        parsed = _parse_override(item)
        refuse_moved_keys(parsed, origin=f"{path}: override '{item}'")
        cfg = _merge(cfg, parsed, origin=f"{path}: override '{item}'",
                     replaced=replaced)
    if cfg.name is None:
        cfg.name = path.stem
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:  # e.g. ${data.size} after data was replaced
        notes = [_replaced_note(where, names) for where, names in replaced.items()
                 if f"'{where}." in str(err)]
        raise ConfigError(f"{path}: {_describe(err)}{''.join(notes[:1])}") from None
    load_plugins(list(cfg.plugins))
    check_recipe(cfg, origin=str(path), replaced=replaced, pretrained_file=pretrained_file)
    if isinstance(cfg.encoder.get("pretrained"), str):
        cfg.encoder.pretrained = absolute_pretrained(cfg.encoder.pretrained)
    return cfg


def check_recipe(cfg: DictConfig, *, origin: str, replaced: Replaced | None = None,
                 pretrained_file: bool = True) -> None:
    """Check values the schema's types cannot express, every component section, and the fit.

    Args:
        cfg: A merged recipe.
        origin: The recipe file, named in messages.
        replaced: Component sections replaced while merging (their old and new names), noted in
            the message about their missing keys.
        pretrained_file: Check that the ``encoder.pretrained`` path exists; a recipe that may
            resume (``resume`` set) is not checked, as a resumed run takes its weights from the
            checkpoint (training reports a missing file if it starts afresh after all).
    """
    import levyjepa

    def fail(msg: str) -> None:
        raise ConfigError(f"{origin}: {msg}")

    choices = {
        "trainer.precision": (cfg.trainer.precision, PRECISIONS),
        "trainer.device": (cfg.trainer.device, DEVICES),
        "trainer.on_nonfinite": (cfg.trainer.on_nonfinite, ON_NONFINITE),
        "trainer.strategy": (cfg.trainer.strategy, STRATEGIES),
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
        "optim.accumulate_steps": cfg.optim.accumulate_steps,
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
    if any(step < 0 for step in cfg.trainer.keep_steps):
        fail(f"trainer.keep_steps must list steps >= 0, got {list(cfg.trainer.keep_steps)}")
    if cfg.log.diagnostics_every < 0:
        fail(f"log.diagnostics_every must be >= 0 (0: off), got {cfg.log.diagnostics_every}")
    if cfg.trainer.probe_classes is not None and cfg.trainer.probe_classes < 1:
        fail(f"trainer.probe_classes must be >= 1, got {cfg.trainer.probe_classes}")

    data = OmegaConf.to_container(cfg.data)
    assert isinstance(data, dict)
    for key, kind in DATA_LOADER_KEYS.items():
        value = data.get(key, 0 if key == "workers" else 1)  # a missing key: reported below
        if not isinstance(value, kind) or isinstance(value, bool) or value < (key != "workers"):
            fail(f"data.{key} must be a {'non-negative' if key == 'workers' else 'positive'} "
                 f"{kind.__name__}, got {value!r}")
    try:  # an image source's data keys that moved to the views section
        check_moved_data_keys(data)
    except ConfigError as err:
        fail(str(err))
    for where, registry_name in COMPONENT_SECTIONS.items():
        section = OmegaConf.select(cfg, where)
        if section is None and where in OPTIONAL_SECTIONS:
            continue
        section = OmegaConf.to_container(section) if section is not None else {}
        loader_missing = []
        if where == "data":
            section = {k: v for k, v in section.items() if k not in DATA_LOADER_KEYS}
            loader_missing = [k for k in DATA_LOADER_KEYS if k not in data]
        if where == "encoder":  # the pretrained keys are every encoder's, no constructor's
            problem = pretrained_problem(section, need_file=pretrained_file and cfg.resume is None)
            if problem:
                fail(problem)
            section = split_pretrained(section)[0]
        registry = getattr(levyjepa, registry_name)
        note = _replaced_note(where, (replaced or {}).get(where))
        try:
            registry.check(section, where=where)
        except MissingParameters as err:
            if loader_missing:
                name = section["name"]
                missing = ", ".join(f"{where}.{k}" for k in [*err.missing, *loader_missing])
                fail(f"{where}: {registry.kind} '{name}' needs {missing}; valid parameters: "
                     f"{err.valid}{note}")
            fail(f"{err}{note}")
        except ConfigError as err:
            fail(str(err))
        if loader_missing:
            fail(f"{where}: the loader needs {', '.join(f'data.{k}' for k in loader_missing)}"
                 f"{note}")
    views = OmegaConf.select(cfg, "views")
    try:  # a views section an image source lacks or a video source has, and its values
        check_views_section(data, OmegaConf.to_container(views) if views is not None else None)
        check_priors_section(cfg)
    except ConfigError as err:
        fail(str(err))
    problem = _fit_problem(cfg, levyjepa.DATA, levyjepa.ENCODERS)
    if problem:
        fail(problem)


def _replaced_note(where: str, names: tuple[Any, Any] | None) -> str:
    if names is None:
        return ""
    return (f" (the {where} section was replaced because its name changed from '{names[0]}' "
            f"to '{names[1]}'; its other keys must be given again)")


def _effective(registry: Registry, section: Mapping[str, Any]) -> dict[str, Any]:
    """The section's values over the registered component's constructor defaults."""
    params = registry.parameters(section["name"])
    values = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    return {**values, **section}


def _fit_problem(cfg: DictConfig, data_registry: Registry, encoder_registry: Registry
                 ) -> str | None:
    """Why the data source's views cannot be the encoder's input, or ``None``.

    Keys are paired by name (:data:`FIT_KEYS`), so plugins following the built-ins' names are
    checked too; images against clips is checked between built-in components only.
    """
    data_section = OmegaConf.to_container(cfg.data)
    encoder_section = OmegaConf.to_container(cfg.encoder)
    assert isinstance(data_section, dict) and isinstance(encoder_section, dict)
    encoder_section = split_pretrained(encoder_section)[0]
    data = _effective(data_registry, data_section)
    enc = _effective(encoder_registry, encoder_section)
    data_name, enc_name = data["name"], enc["name"]

    def shown(section: str, key: str) -> str:
        values, given, registry = ((data, data_section, data_registry) if section == "data"
                                   else (enc, encoder_section, encoder_registry))
        default = "" if key in given else f" (the default of {registry.kind} '{values['name']}')"
        return f"{section}.{key}={values[key]}{default}"

    builtin = all(r.get(n).__module__.startswith("levyjepa.")
                  for r, n in ((data_registry, data_name), (encoder_registry, enc_name)))
    clips, takes_clips = "frames_per_clip" in data, "num_frames" in enc
    if builtin and clips != takes_clips:
        fitting = [n for n in encoder_registry.names()
                   if ("num_frames" in encoder_registry.parameters(n)) == clips]
        made, taken = ("clips", "images") if clips else ("images", "clips")
        return (f"encoder: encoder '{enc_name}' takes {taken} but data source '{data_name}' "
                f"makes {made}; encoders for {made}: {', '.join(fitting) or 'none'}")
    views_side = global_view_size(cfg)  # the views section's side wins over data.size
    for data_key, enc_key in FIT_KEYS:
        if enc_key not in enc or (data_key not in data and not (
                data_key == "size" and views_side is not None)):
            continue
        unit = " px views" if data_key == "size" else "-frame clips"
        if data_key == "size" and views_side is not None:
            (made_shown, made), key = views_side, "views.global_size"
            makes = f"the views section makes {made}{unit}"
        else:
            made, made_shown, key = data[data_key], shown("data", data_key), f"data.{data_key}"
            makes = f"the data source makes {made}{unit}"
        taken = enc[enc_key]
        if not (_positive_int(made) and _positive_int(taken)) or made == taken:
            continue  # a value that is not a positive integer is its component's to refuse
        return (f"{made_shown} does not match {shown('encoder', enc_key)}: {makes} and the "
                f"encoder takes {taken}{unit}; set encoder.{enc_key}={made} (or {key}={taken})")
    if "tubelet_size" in enc:  # a tubelet embedding tiles the clip exactly or fails
        for size_key, tile_key in (("num_frames", "tubelet_size"), ("img_size", "patch_size")):
            size, tile = enc.get(size_key), enc.get(tile_key)
            if _positive_int(size) and _positive_int(tile) and size % tile:
                return (f"{shown('encoder', size_key)} is not a multiple of "
                        f"{shown('encoder', tile_key)}: the tubelets would not tile the clip; "
                        f"use a multiple of {tile}")
    return None


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _load_file(path: Path, chain: tuple[Path, ...], replaced: Replaced) -> DictConfig:
    """Read one recipe file and its bases, each validated against the schema."""
    if not path.is_file():
        raise ConfigError(moved_recipe(path) or f"recipe file not found: {path}")
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError(f"{path}: 'base' inheritance cycle: {cycle}")
    try:
        raw = OmegaConf.load(path)
    except yaml.MarkedYAMLError as err:  # syntax errors and OmegaConf's duplicate keys
        raise ConfigError(yaml_error(path, err)) from None
    except Exception as err:  # YAML syntax errors come in several exception types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{path}: not a valid YAML recipe: {first}") from None
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping, got a list")
    refuse_moved_keys(raw, origin=str(path))
    base = raw.pop("base", None)
    if base is None:
        return _merge(OmegaConf.structured(Recipe), raw, origin=str(path), replaced=replaced)
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be a file name, got {base!r}")
    parent = _load_file(path.parent / base, chain=(*chain, resolved), replaced=replaced)
    return _merge(parent, raw, origin=str(path), replaced=replaced)


def _parse_override(item: str) -> DictConfig:
    if "=" not in item or item.startswith("="):
        raise ConfigError(f"override {item!r} is not of the form key=value")
    try:
        return OmegaConf.from_dotlist([item])
    except OmegaConfBaseException as err:
        raise ConfigError(f"override {item!r}: {_describe(err)}") from None


def _merge(cfg: DictConfig, update: DictConfig, *, origin: str, replaced: Replaced
           ) -> DictConfig:
    """Merge ``update`` over ``cfg``, replacing component sections whose name changes.

    A replaced section keeps only its loader keys (``data.batch_size``, ``data.workers``), or a
    prior entry its attachment (``input``, ``weight``, ``graph_at_zero_weight``);
    ``replaced`` records its old and new names.
    """
    terms = update.get("priors") if isinstance(update, DictConfig) else None
    dynamic = [f"priors.{t}" for t in terms] if isinstance(terms, DictConfig) else []
    for where in [*COMPONENT_SECTIONS, *dynamic]:
        new = OmegaConf.select(update, where)
        old = OmegaConf.select(cfg, where)
        if (
            isinstance(new, DictConfig)
            and isinstance(old, DictConfig)
            and "name" in new
            and old.get("name") is not None
            and new.get("name") != old.get("name")
        ):
            replaced[where] = (old.get("name"), new.get("name"))
            raw = OmegaConf.to_container(old, resolve=False)  # interpolations kept as written
            assert isinstance(raw, dict)
            keep = (DATA_LOADER_KEYS if where == "data"
                    else ENTRY_KEYS if where.startswith("priors.") else ())
            kept = {k: raw[k] for k in keep if k in raw}
            OmegaConf.update(cfg, where, kept, merge=False)
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
