"""One-line messages for YAML errors in a recipe file: its line and column, and a duplicate key
by its dotted name (used by :mod:`levyjepa.config.recipe`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def yaml_error(path: Path, err: yaml.MarkedYAMLError) -> str:
    """One line: ``file:line:column:`` and the problem (a duplicate key by its dotted name)."""
    mark = err.problem_mark or err.context_mark
    if mark is None:
        return f"{path}: not a valid YAML recipe: {err.problem or err.context or err}"
    where = f"{path}:{mark.line + 1}:{mark.column + 1}"
    problem = str(err.problem or err.context)
    if problem.startswith("found duplicate key"):
        key, first = duplicate_key(path, mark) or (problem.split()[-1], None)
        earlier = f" (first on line {first})" if first else ""
        return f"{where}: duplicate key '{key}'{earlier}; a key may appear once per mapping"
    lines = path.read_text(errors="replace").splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    if line[mark.column:mark.column + 1] == "\t":
        problem = f"a tab character ({problem}); YAML indents with spaces, not tabs"
    context = (f" ({err.context} at line {err.context_mark.line + 1}, column "
               f"{err.context_mark.column + 1})" if err.context and err.context_mark
               and err.problem_mark and err.context_mark.line != mark.line else "")
    return f"{where}: not a valid YAML recipe: {problem}{context}"


def duplicate_key(path: Path, mark: Any) -> tuple[str, int | None] | None:
    """The dotted name of the key at ``mark`` and the line of its first occurrence."""
    try:
        root = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None

    def walk(node: yaml.Node, prefix: str) -> tuple[str, int | None] | None:
        items: list[tuple[Any, yaml.Node]] = []
        if isinstance(node, yaml.MappingNode):
            items = node.value
        elif isinstance(node, yaml.SequenceNode):
            items = [(None, item) for item in node.value]
        first: dict[Any, int] = {}
        for index, (key, value) in enumerate(items):
            name = f"{prefix}{index if key is None else key.value}"
            if key is not None:
                if (key.start_mark.line, key.start_mark.column) == (mark.line, mark.column):
                    return name, first.get(key.value)
                first.setdefault(key.value, key.start_mark.line + 1)
            found = walk(value, f"{name}.")
            if found:
                return found
        return None

    return walk(root, "") if root is not None else None
