"""The command line of :mod:`levyjepa.study`: its parser and the checks of its arguments.

Every check raises :class:`levyjepa.core.errors.ConfigError` with one line naming the option at
fault; the study prints it and exits with status 2 before anything runs.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Optional

from levyjepa.core.cli_help import HelpFormatter
from levyjepa.core.errors import ConfigError

__all__ = ["RESERVED_EVAL", "RESERVED_TRAIN", "check_items", "comparisons", "eval_at_steps",
           "letter", "names", "parser", "references", "target"]

RESERVED_TRAIN = ("seed", "out_dir", "resume", "overwrite")
"""Training keys the study sets per run."""
RESERVED_EVAL = ("out", "untrained", "task", "checkpoint")
"""Evaluation keys the study sets: ``eval.json`` must land in the run (``--eval-at``: its
checkpoints' files), ``task`` comes from ``--tasks``."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_items(items: Sequence[str], reserved: Sequence[str], where: str) -> None:
    """Refuse an item that is not ``key=value`` or sets a ``reserved`` key.

    Raises:
        ConfigError: naming the item and ``where`` it was given.
    """
    for item in items:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or not key:
            raise ConfigError(f"{where} {item!r} is not of the form key=value")
        if key in reserved:
            raise ConfigError(f"{where} '{item}': {', '.join(reserved)} are set by the study")


def letter(i: int) -> str:
    """The default name of arm ``i``: ``A``, ``B``, ... then ``ARM27``, ..."""
    return chr(ord("A") + i) if i < 26 else f"ARM{i + 1}"


def names(text: Optional[str], count: int) -> list[str]:
    """The arms' names: ``--names`` (``count`` different ones) or ``A``, ``B``, ...

    Raises:
        ConfigError: a wrong number of names, a repeated or malformed one.
    """
    if text is None:
        return [letter(i) for i in range(count)]
    found = [n.strip() for n in text.split(",")]
    if (len(found) != count or len(set(found)) != count
            or not all(_NAME.fullmatch(n) for n in found)):
        many = "two" if count == 2 else str(count)
        raise ConfigError(f"--names {text!r}: give {many} different names, letters, digits, "
                          "'_', '-' or '.', e.g. --names baseline,levy")
    return found


def references(text: Optional[str], arm_names: Sequence[str]) -> list[str]:
    """The arms ``--reference X[,Y]`` names: drawn as dashed lines, never compared.

    Raises:
        ConfigError: an unknown or repeated arm, or fewer than two arms left to compare.
    """
    if text is None:
        return []
    found = [n.strip() for n in text.split(",")]
    if len(set(found)) != len(found) or not set(found) <= set(arm_names):
        raise ConfigError(f"--reference {text!r}: give arms of {', '.join(arm_names)}, "
                          "each once, e.g. --reference supervised")
    if len(arm_names) - len(found) < 2:
        raise ConfigError(f"--reference {text!r}: at least two arms must remain to compare "
                          f"(arms: {', '.join(arm_names)})")
    return found


def comparisons(items: Sequence[str], arm_names: Sequence[str],
                reference_arms: Sequence[str] = ()) -> list[tuple[str, str]]:
    """``(X, Y)`` pairs of ``--compare X:Y`` (default: every compared arm after the first
    with the first; reference arms are never compared).

    Raises:
        ConfigError: a pair that is not two different compared arms.
    """
    compared = [n for n in arm_names if n not in reference_arms]
    if not items:
        return [(name, compared[0]) for name in compared[1:]]
    pairs = []
    for item in items:
        parts = item.split(":")
        if len(parts) != 2 or parts[0] == parts[1] or not set(parts) <= set(arm_names):
            raise ConfigError(f"--compare {item!r}: give X:Y, two different arms of "
                              f"{', '.join(arm_names)}")
        if set(parts) & set(reference_arms):
            raise ConfigError(f"--compare {item!r}: {', '.join(reference_arms)} "
                              "(--reference) are drawn for reference, never compared")
        pairs.append((parts[0], parts[1]))
    return pairs


def target(text: str) -> float:
    """The value of ``--target-difference``: a finite number > 0.

    Raises:
        ConfigError: anything else.
    """
    try:
        if 0.0 < (value := float(text)) < float("inf"):
            return value
    except ValueError:
        pass
    raise ConfigError(f"--target-difference {text!r}: give a difference > 0 in the metrics' "
                      "units, e.g. --target-difference 0.02")


def eval_at_steps(text: Optional[str]) -> list[int]:
    """The steps of ``--eval-at 0,250,500``: distinct integers >= 0, sorted.

    Raises:
        ConfigError: an empty list, a value that is not an integer or is negative.
    """
    if text is None:
        return []
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ConfigError(f"--eval-at {text!r}: give training steps >= 0, comma-separated, "
                          "e.g. --eval-at 0,250,500")
    return sorted({int(p) for p in parts})


def parser() -> argparse.ArgumentParser:
    """The parser of ``python -m levyjepa.study``."""
    found = argparse.ArgumentParser(
        prog="python -m levyjepa.study",
        description="Train and evaluate two recipes (or more) over paired seeds: does B beat A?",
        formatter_class=HelpFormatter,
        epilog="KEY=VALUE: a recipe key (python -m levyjepa.run RECIPE --print-config lists\n"
               "them); --eval: a setting of python -m levyjepa.eval --help (this command sets\n"
               "progress=false). Details: pydoc levyjepa.study.")
    add = found.add_argument
    add("items", nargs="+", metavar="RECIPE_OR_KEY=VALUE",
        help="the arms' recipe files (at least two; B may be A's, with --a/--b), then training "
             "overrides of every arm")
    add("--out", help="folder (default runs/study_<stemA>_vs_<stemB>)")
    add("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    add("--first-seed", type=int, default=0, help="the first seed (default 0)")
    add("--tasks", help="evaluation tasks a,b,... (default: eval's own)")
    add("--eval", action="append", default=[], metavar="KEY=VALUE",
        help="an evaluation setting (repeatable), e.g. --eval k=10")
    add("--a", action="append", default=[], metavar="KEY=VALUE",
        help="a training override of arm A only (repeatable)")
    add("--b", action="append", default=[], metavar="KEY=VALUE",
        help="a training override of arm B only (repeatable)")
    add("--names", help="the arms' names, e.g. baseline,levy (default: A,B,...)")
    add("--compare", action="append", default=[], metavar="X:Y",
        help="compare arm X with arm Y, X - Y (repeatable; default: every arm with the first)")
    add("--target-difference", metavar="X",
        help="also report the paired seeds that detect a true difference X > 0 with 80%% power")
    add("--eval-at", metavar="STEPS",
        help="also evaluate each run at these training steps, e.g. 0,250,500 (0: the initial "
             "weights), from kept checkpoints: learning_curves.png")
    add("--reference", metavar="NAME[,NAME]",
        help="arms drawn for reference (dashed), never compared, e.g. a supervised ceiling")
    add("--parallel", type=int, default=1, metavar="N",
        help="runs trained and evaluated at once (default 1; the numbers do not change)")
    add("--traceback", action="store_true", help="show full tracebacks")
    return found
