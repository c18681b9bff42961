"""The package's layout: every module lives in a package named by its role, and imports only
downwards.

The layers, bottom to top (a module may import its own layer and the layers below it):

0. ``core``: the registries and small helpers;
1. the components: ``encoders``, ``priors``, ``methods``, ``data`` (and the package root
   ``levyjepa``, which registers them);
2. ``diagnostics``: what a run measures and draws about its representation;
3. ``config``: recipes and plugins;
4. ``training``: the training run;
5. ``eval``: the evaluation protocols, which read trained runs;
6. ``studies``: several runs together;
7. the entry points: ``levyjepa.run``, ``study``, ``report``, ``export``, ``reproduce``,
   ``slurm`` and the ``eval`` command's ``levyjepa.eval.__main__``.

Imports are read from the source (module level and inside functions alike), so a deferred
import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "levyjepa"

ENTRY_POINTS = {"levyjepa.run", "levyjepa.study", "levyjepa.report", "levyjepa.export",
                "levyjepa.reproduce", "levyjepa.slurm", "levyjepa.eval.__main__",
                "levyjepa.data.shards.__main__"}
LAYERS = {"core": 0, "encoders": 1, "priors": 1, "methods": 1, "data": 1, "diagnostics": 2,
          "config": 3, "training": 4, "eval": 5, "studies": 6}
TOP = 7


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """The layer of a ``levyjepa`` module (the package root counts as a component)."""
    if module in ENTRY_POINTS:
        return TOP
    parts = module.split(".")
    if len(parts) == 1:
        return 1
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module}: not in a role package {sorted(LAYERS)} and not an "
                             "entry point")
    return LAYERS[parts[1]]


def imported_modules(path: Path) -> set[str]:
    """Every ``levyjepa`` module ``path`` imports (``from levyjepa.x import y`` counts ``x.y``
    when ``x.y`` is a module, else ``x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "levyjepa")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "levyjepa":
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return found


def test_the_top_level_holds_only_entry_points_and_role_packages() -> None:
    top_modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert {f"levyjepa.{m}" for m in top_modules} <= ENTRY_POINTS, top_modules
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS), packages


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_each_role_package_says_what_it_holds(package: str) -> None:
    module = importlib.import_module(f"levyjepa.{package}")
    doc = module.__doc__ or ""
    assert len(doc.strip().splitlines()) >= 2, package
    assert "May import" in doc or "Imports nothing" in doc, f"{package}: say what it may import"


SOURCE_DIRS = ("levyjepa", "tests", "benchmarks", "examples")
MAX_LINES = 400


def test_no_source_file_is_over_400_lines() -> None:
    long = [f"{p.relative_to(ROOT)}: {n} lines" for d in SOURCE_DIRS
            for p in sorted((ROOT / d).rglob("*.py")) if "build" not in p.parts
            for n in [len(p.read_text().splitlines())] if n > MAX_LINES]
    assert not long, "split these files:\n" + "\n".join(long)


def test_nothing_imports_upwards() -> None:
    wrong = []
    for name, path in MODULES.items():
        for target in imported_modules(path):
            if target not in MODULES:
                wrong.append(f"{name} imports {target}, which does not exist")
            elif layer(target) > layer(name):
                wrong.append(f"{name} (layer {layer(name)}) imports {target} "
                             f"(layer {layer(target)})")
            elif layer(target) == TOP and target != name and name not in ENTRY_POINTS:
                wrong.append(f"{name} imports the entry point {target}")
    assert not wrong, "\n".join(wrong)


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker is not blind: a component importing the training run is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from levyjepa.training.loop import train\n")
    assert imported_modules(bad) == {"levyjepa.training.loop"}
    assert layer("levyjepa.training.loop") > layer("levyjepa.priors.sigreg")


def test_the_names_users_and_plugins_import_are_unchanged() -> None:
    code = ("import levyjepa\n"
            "from levyjepa import DATA, ENCODERS, METHODS, PRIORS, VIEWS, Registry\n"
            "from levyjepa.methods import Method, MethodNeeds, MethodOutput\n"
            "from levyjepa.encoders import EncoderOutput\n"
            "import levyjepa.run, levyjepa.study, levyjepa.report, levyjepa.export\n"
            "import levyjepa.reproduce, levyjepa.eval.command\n"
            "for m in (levyjepa.run, levyjepa.study, levyjepa.report, levyjepa.export,\n"
            "          levyjepa.reproduce):\n"
            "    assert callable(m.main), m\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
