"""Plugins: user components registered without editing the library.

Two ways in, both importing modules whose import registers components (with
``@PRIORS.register(...)`` and friends):

* Installed packages declare modules in the entry-point group ``levyjepa.plugins``::

      [project.entry-points."levyjepa.plugins"]
      my_priors = "my_package.priors"

  The runner imports every such module before it reads a recipe's components.
* A recipe lists importable local modules: ``plugins: [my_priors, lab.encoders]``.

``examples/plugin/`` is a complete installable example.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable

from levyjepa.errors import ConfigError

ENTRY_POINT_GROUP = "levyjepa.plugins"

_loaded: set[str] = set()


def load_entry_point_plugins() -> list[str]:
    """Import every module declared in the ``levyjepa.plugins`` entry-point group.

    Returns:
        The entry-point names loaded by this call (already loaded ones are skipped).

    Raises:
        ConfigError: if a declared plugin fails to import, naming the entry point and its
            distribution.
    """
    loaded = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.value in _loaded:
            continue
        try:
            ep.load()
        except Exception as err:
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            raise ConfigError(
                f"plugin entry point '{ep.name}' ({ep.value}, from {dist}) failed to import: "
                f"{type(err).__name__}: {err}"
            ) from err
        _loaded.add(ep.value)
        loaded.append(ep.name)
    return loaded


def import_plugin_modules(modules: Iterable[str]) -> None:
    """Import the modules listed under a recipe's ``plugins:`` key.

    Raises:
        ConfigError: naming the module that cannot be imported.
    """
    for module in modules:
        if module in _loaded:
            continue
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            raise ConfigError(
                f"plugins: cannot import module '{module}' ({err}); it must be importable from "
                "the current directory or PYTHONPATH"
            ) from err
        _loaded.add(module)


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Load installed entry-point plugins, then a recipe's ``plugins:`` modules."""
    load_entry_point_plugins()
    import_plugin_modules(modules)
