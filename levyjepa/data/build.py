"""The recipe's ``data`` and ``views`` sections to the :class:`DataSplits` a run reads.

A video source (``video_folder``, ``synthetic_video``, ``scene_video``) returns its splits
itself: it makes its own clip views (``data.views``, ``data.crop_scale``, ...), and a recipe
that gives it a ``views`` section is refused. An image source (annotated ``-> ImageSource``:
``image_folder``, ``imagenette``, ``synthetic_shapes``, ``scenes``, and any plugin so annotated)
returns plain labelled images, and the recipe's ``views`` section, a view pipeline of
:data:`levyjepa.VIEWS`, makes the training (multi-view), ``train_eval`` and test splits of them.
An image source without a ``views`` section is refused: there is no hidden default, the recipe
says how its views are made. The views' seed is the recipe's top-level ``seed`` unless the
section sets ``views.seed``.

Every caller (training, offline evaluation, benchmarks) builds its data with
:func:`build_splits`.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Mapping
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA, VIEWS
from levyjepa.data.loading.image_source import ImageSource
from levyjepa.data.loading.loader_options import DATA_LOADER_KEYS
from levyjepa.data.loading.splits import DataSplits, ViewGroups
from levyjepa.data.moved_keys import refuse_moved_data_keys

VIEWS_EXAMPLE = ("views: {name: light, global_views: 2} (generated images) or "
                 "views: {name: seed, global_views: 4, global_size: 128} (natural images)")
"""Shown when an image source lacks a views section."""


def build_splits(cfg: DictConfig | Mapping[str, Any]) -> DataSplits:
    """Build the data source of a recipe and apply its ``views`` section.

    Args:
        cfg: The whole resolved recipe (its ``data``, ``views`` and ``seed`` are read).

    Returns:
        The run's splits, with ``view_groups`` set.

    Raises:
        ConfigError: one line naming the key at fault (a moved ``data`` key, a missing or
            refused ``views`` section, a bad parameter).
    """
    tree = _plain(cfg)
    return splits_from(tree.get("data") or {}, tree.get("views"), seed=int(tree.get("seed", 0)))


def splits_from(data: Mapping[str, Any], views: Optional[Mapping[str, Any]], *,
                seed: int = 0) -> DataSplits:
    """:func:`build_splits` from the sections themselves.

    Args:
        data: The ``data`` section (its loader keys are ignored).
        views: The ``views`` section, or ``None``.
        seed: The recipe's top-level seed (the views' seed unless ``views`` sets one).
    """
    data = {k: v for k, v in _plain(data).items() if k not in DATA_LOADER_KEYS}
    views = _plain(views) if views is not None else None
    check_data_views(data, views)
    made = DATA.build(data, where="data")
    name = data.get("name")
    if isinstance(made, ImageSource):
        if views is None:
            raise ConfigError(missing_views_message(name))
        splits = VIEWS.build(_seeded(views, seed), where="views")(made)
    elif isinstance(made, DataSplits):
        if views is not None:
            raise ConfigError(own_views_message(name))
        splits = made
    else:
        raise ConfigError(f"data: data source '{name}' returned {type(made).__name__}; a data "
                          "source returns ImageSource (images) or DataSplits (its own views)")
    if not splits.view_groups:
        splits = dataclasses.replace(splits, view_groups=infer_view_groups(splits))
    return splits


def check_data_views(data: Mapping[str, Any], views: Optional[Mapping[str, Any]]) -> None:
    """Refuse, before anything is built, what :func:`build_splits` would refuse about views.

    :func:`check_moved_data_keys`, then :func:`check_views_section`.

    Raises:
        ConfigError: one line naming the key at fault.
    """
    check_moved_data_keys(data)
    check_views_section(data, views)


def check_moved_data_keys(data: Mapping[str, Any]) -> None:
    """Refuse the keys of an image source's ``data`` section that moved to ``views``.

    Run before the section is checked against its data source, so the message names the new
    key rather than an unknown parameter. Sources whose kind is unknown (an unregistered name, a
    plugin without a return annotation) are left alone.

    Raises:
        ConfigError: ``data.<key> moved to views.<new key>``.
    """
    name = data.get("name")
    if source_kind(name) is ImageSource:
        refuse_moved_data_keys(data, accepted=DATA.parameters(name))


def check_views_section(data: Mapping[str, Any], views: Optional[Mapping[str, Any]]) -> None:
    """Refuse an image source without a ``views`` section, a video source with one, and the
    section's own bad values (its pipeline is built: cheap, no data is read).

    Raises:
        ConfigError: one line naming the key at fault.
    """
    name = data.get("name")
    kind = source_kind(name)
    if kind is ImageSource and views is None:
        raise ConfigError(missing_views_message(name))
    if kind is DataSplits and views is not None:
        raise ConfigError(own_views_message(name))
    if views is not None and views.get("name") in VIEWS:
        VIEWS.build(_seeded(views, 0), where="views")


def source_kind(name: Any) -> Optional[type]:
    """``ImageSource`` or ``DataSplits``: what the data source ``name`` is annotated to return.

    ``None`` for an unknown name or a factory without a (resolvable) return annotation.
    """
    if not isinstance(name, str) or name not in DATA:
        return None
    factory = DATA.get(name)
    try:
        target = factory.__init__ if inspect.isclass(factory) else factory
        made = factory if inspect.isclass(factory) else typing.get_type_hints(target).get("return")
    except Exception:  # unresolvable annotations: unknown until built
        return None
    for kind in (ImageSource, DataSplits):
        if inspect.isclass(made) and issubclass(made, kind):
            return kind
    return None


def missing_views_message(name: Any) -> str:
    """The one line refusing an image source without a ``views`` section."""
    return (f"views: data source '{name}' makes plain images and needs a views section saying "
            f"how training views are made, e.g. {VIEWS_EXAMPLE}; view pipelines: "
            f"{', '.join(VIEWS.names())}")


def own_views_message(name: Any) -> str:
    """The one line refusing a ``views`` section for a source that makes its own views."""
    return (f"views: data source '{name}' makes its own views (data.views, data.crop_scale, "
            "...); remove the views section (views=null on the command line)")


def global_view_size(cfg: DictConfig | Mapping[str, Any]) -> Optional[tuple[str, int]]:
    """The global views' side as ``views.global_size`` sets it (or its pipeline's default).

    Returns:
        ``(shown, side)`` with ``shown`` the key as a message names it (``views.global_size=128
        (the default of view pipeline 'seed')``), or ``None`` when there is no views section,
        its pipeline is unknown or its side follows the data source (``light``'s default).
    """
    views = _plain(cfg).get("views")
    if not isinstance(views, Mapping) or views.get("name") not in VIEWS:
        return None
    given = views.get("global_size")
    if given is not None:
        return f"views.global_size={given}", given
    param = VIEWS.parameters(views["name"]).get("global_size")
    if param is None or param.default in (None, inspect.Parameter.empty):
        return None
    return (f"views.global_size={param.default} (the default of view pipeline "
            f"'{views['name']}')", param.default)


def infer_view_groups(splits: DataSplits) -> ViewGroups:
    """``view_groups`` of splits whose source did not state them, read off the first item."""
    if splits.device_views is not None:
        module = splits.device_views
        groups = ((int(module.views), int(module.size)),)
        local = int(getattr(module, "local_views", 0))
        return (*groups, (local, int(module.local_size))) if local else groups
    if not len(splits.train):
        return ()
    views = splits.train[0][0]
    parts = views if isinstance(views, (tuple, list)) else (views,)
    return tuple((int(p.shape[0]), int(p.shape[-1])) for p in parts)


def _seeded(views: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The ``views`` section with ``seed`` (the recipe's) unless it sets one or takes none."""
    section = dict(views)
    if section.get("seed") is None and "seed" in VIEWS.parameters(section["name"]):
        section["seed"] = seed
    return section


def _plain(tree: Any) -> Any:
    """A DictConfig as plain containers (resolved); anything else as it is."""
    if isinstance(tree, DictConfig):
        return OmegaConf.to_container(tree, resolve=True)
    return tree
