"""Plugins: user components registered without editing the library.

Two ways in, both importing modules whose import registers components (with
``@PRIORS.register(...)`` and friends):

* Installed packages declare modules in the entry-point group ``levyjepa.plugins``::

      [project.entry-points."levyjepa.plugins"]
      my_priors = "my_package.priors"

  The runner imports every such module before it reads a recipe's components.
* A recipe lists importable local modules: ``plugins: [my_priors, lab.encoders]``.

``examples/plugin/`` is a complete installable example.

A plugin that fails to import (an exception at import time, a missing dependency, a component
name that is already registered) is reported as one line naming the module, the error and the
line of the plugin that raised it, before anything is built. Whether a registered prior's
``forward`` accepts ``(x, *, step)`` is checked with the recipe (:meth:`Registry.check`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import traceback
from collections.abc import Iterable
from pathlib import Path

from levyjepa.core.errors import ConfigError

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
                f"{describe_import_error(err)}"
            ) from err
        _loaded.add(ep.value)
        loaded.append(ep.name)
    return loaded


def import_plugin_modules(modules: Iterable[str]) -> None:
    """Import the modules listed under a recipe's ``plugins:`` key.

    Raises:
        ConfigError: naming the module that cannot be found, or that raised while importing
            (with the error and the plugin's line that raised it).
    """
    for module in modules:
        if module in _loaded:
            continue
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name is not None and not (module == err.name
                                             or module.startswith(f"{err.name}.")):
                raise ConfigError(f"plugins: module '{module}' failed to import: "
                                  f"{describe_import_error(err)}; it imports '{err.name}', "
                                  "which is not installed") from err
            raise ConfigError(
                f"plugins: cannot import module '{module}' ({err}); it must be importable from "
                "the current directory or PYTHONPATH"
            ) from err
        except Exception as err:  # the plugin's own code raised (a clash of names included)
            raise ConfigError(f"plugins: module '{module}' failed to import: "
                              f"{describe_import_error(err)}") from err
        _loaded.add(module)


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Load installed entry-point plugins, then a recipe's ``plugins:`` modules."""
    load_entry_point_plugins()
    import_plugin_modules(modules)


def describe_import_error(err: BaseException) -> str:
    """One line: the error's type and first line, and the plugin's line that raised it."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    at = _raising_line(err)
    return f"{text} (at {at})" if at else text


def _raising_line(err: BaseException) -> str | None:
    """``file:line`` of the innermost frame outside levyjepa and the import machinery."""
    skip = (Path(__file__).resolve().parents[1], Path(importlib.__file__).resolve().parent)
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not f.filename.startswith("<")
              and not any(Path(f.filename).resolve().is_relative_to(d) for d in skip)]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None


PLUGINS_FILE = "plugins.json"
"""Where a run directory records the files its ``plugins:`` modules were imported from."""


def plugin_origins(modules: Iterable[str]) -> dict[str, dict[str, str]]:
    """Where each imported ``plugins:`` module came from: its file and the ``sys.path`` folder
    that made it importable (``PYTHONPATH`` for a later evaluation from elsewhere)."""
    import sys

    origins = {}
    for module in modules:
        loaded = sys.modules.get(module)
        file = getattr(loaded, "__file__", None)
        if file is None:
            continue
        path = Path(file).resolve()
        depth = module.count(".") + (2 if path.name == "__init__.py" else 1)
        origins[module] = {"file": str(path), "path_entry": str(path.parents[depth - 1])}
    return origins


def plugin_hint(run_dir: Path, error: str) -> str:
    """For a ``plugins:`` import error while reading a run: where the run found the module
    (from its :data:`PLUGINS_FILE`), or what to do; empty if ``error`` is of another kind."""
    import json

    if not error.startswith("plugins: "):
        return ""
    recorded = run_dir / PLUGINS_FILE
    origins = json.loads(recorded.read_text()) if recorded.is_file() else {}
    for module, origin in origins.items():
        if f"'{module}'" in error:
            return (f"the run imported '{module}' from {origin['file']}: run this command from "
                    f"{origin['path_entry']} or with PYTHONPATH={origin['path_entry']}")
    return ("evaluation and export import the run's plugins too: run them where training could "
            "import them, or with that folder on PYTHONPATH")
