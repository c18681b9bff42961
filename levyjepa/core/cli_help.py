"""The ``--help`` text of the commands: settings listed with their defaults.

Every ``python -m levyjepa.<command>`` builds its parser with :class:`HelpFormatter` (the
epilog is printed as written; an option whose help names no default gets ``(default: X)``), and
lists its ``key=value`` settings in the epilog with :func:`settings_text`: one line per field of
a dataclass, ``key=default  description``, the description taken from the field's
``metadata["help"]`` (or a mapping passed in).
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, Optional

WIDTH = 79
"""Width of the epilog lines (a terminal's)."""


def format_value(value: Any) -> str:
    """A default as it is typed on the command line: ``true``, ``null``, ``0.07``, ``[]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def setting(default: Any, help: str) -> Any:
    """A dataclass field with an immutable ``default`` and its ``--help`` description."""
    return dataclasses.field(default=default, metadata={"help": help})


def field_default(field: dataclasses.Field) -> Any:
    """The default of a dataclass field (calling its ``default_factory``; ``None`` if none)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def settings_lines(cls: type, *, descriptions: Optional[Mapping[str, str]] = None,
                   names: Optional[Sequence[str]] = None, prefix: str = "", indent: int = 2,
                   width: int = WIDTH) -> list[str]:
    """``key=default  description`` for the fields of a dataclass, descriptions aligned.

    Args:
        cls: The dataclass.
        descriptions: ``name -> description``, for fields without ``metadata["help"]``.
        names: The fields to list, in this order (default: every field, in declaration order).
        prefix: Put before each name (e.g. ``"trainer."``).
        indent: Spaces before each line.
        width: Wrap descriptions to this many columns.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    chosen = list(fields) if names is None else list(names)
    heads = [f"{prefix}{n}={format_value(field_default(fields[n]))}" for n in chosen]
    column = min(max((len(h) for h in heads), default=0), 28)
    lines = []
    for name, head in zip(chosen, heads):
        text = fields[name].metadata.get("help") or (descriptions or {}).get(name, "")
        if not text:
            lines.append(" " * indent + head)
            continue
        start = " " * indent + f"{head:<{column}}  "
        if len(start) > indent + column + 2:  # a long setting: its description on the next line
            lines.append(start.rstrip())
            start = " " * (indent + column + 2)
        lines += textwrap.wrap(text, width=width, initial_indent=start,
                               subsequent_indent=" " * (indent + column + 2))
    return lines


def settings_text(title: str, cls: type, **kwargs: Any) -> str:
    """``title`` and :func:`settings_lines` of ``cls`` as one block of an epilog."""
    return "\n".join([title, *settings_lines(cls, **kwargs)])


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Description and epilog printed as written; every option that takes a value shows its
    default, ``(default: X)``, unless its help already says ``default``."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        text = action.help or ""
        if (not action.option_strings or action.nargs == 0 or "default" in text
                or action.default is argparse.SUPPRESS):
            return text
        value = action.default
        shown = "none" if value is None or value == [] else format_value(value)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()
