"""Every command's ``--help`` lists its settings with their defaults; progress output suits a log.

``python -m levyjepa.<command> --help`` is run in this process (``main(["--help"])``): the
evaluation lists every field of ``EvalConfig`` as ``name=default``, ``run`` the recipe's
sections and top-level keys, and every option that takes a value shows its default. The
progress helper (:mod:`levyjepa.core.progress`) writes no escape code and no carriage return to a
stream that is not a terminal.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import re
from typing import Optional

import pytest

from levyjepa.core.cli_help import (
    HelpFormatter,
    field_default,
    format_value,
    setting,
    settings_lines,
)
from levyjepa.core.progress import LogLines, progress_bar

COMMANDS = ["run", "eval.command", "study", "report", "export", "reproduce"]


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    main = importlib.import_module(f"levyjepa.{command}").main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m levyjepa.")
    return out


def _option_entries(text: str) -> dict[str, str]:
    """``--option -> its help text`` for the options that take a value (flags left out)."""
    section = text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, str] = {}
    current: Optional[str] = None
    for line in section.splitlines():
        head = re.match(r"  (-\S+(?:, -\S+)*)(?: ([A-Z][A-Z_:=]*))?", line)
        if head:
            current = head.group(1).split(", ")[-1] if head.group(2) else None
            if current:
                entries[current] = line
        elif current:
            entries[current] += " " + line.strip()
    return entries


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_shows_its_default(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    options = _option_entries(_help(command, capsys))
    missing = [name for name, text in options.items() if "default" not in text]
    assert not missing, f"python -m levyjepa.{command} --help: no default for {missing}"


def test_eval_help_lists_every_setting_with_its_default(
        capsys: pytest.CaptureFixture[str]) -> None:
    from levyjepa.eval.command import EvalConfig

    text = _help("eval.command", capsys)
    for field in dataclasses.fields(EvalConfig):
        expected = f"{field.name}={format_value(field_default(field))}"
        assert re.search(rf"^  {re.escape(expected)}\s", text, re.M), expected
        assert field.metadata.get("help"), f"EvalConfig.{field.name} has no help"
    for literal in ("task=classification", "seg_iterations=4000", "clips=16", "untrained=false",
                    "k=20", "checkpoint=null", "temperature=0.07"):
        assert f"  {literal} " in text, literal


def test_run_help_lists_sections_top_level_keys_and_launchers(
        capsys: pytest.CaptureFixture[str]) -> None:
    text = _help("run", capsys)
    for section in ("data", "views", "encoder", "method", "priors", "optim", "trainer", "log"):
        assert re.search(rf"^  {section}\s+\S", text, re.M), section
    for key in ("name=null", "seed=0", "plugins=[]", "out_dir=null", "resume=null",
                "overwrite=false", "resume_changes=[]"):
        assert f"  {key} " in text, key
    assert "--print-config" in text
    assert ("accelerate launch --num_processes 1 --num_machines 1 --mixed_precision bf16 \\\n"
            "      --dynamo_backend no -m levyjepa.run") in text


def test_other_commands_name_their_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    study = _option_entries(_help("study", capsys))
    assert "(default 3)" in study["--seeds"] and "(default 0)" in study["--first-seed"]
    assert "(default: none)" in study["--eval"]
    assert "(default: runs/reproduce)" in _option_entries(_help("reproduce", capsys))["--out"]
    assert "RUN_DIR/export" in _option_entries(_help("export", capsys))["--out"]


@dataclasses.dataclass
class _Toy:
    short: int = setting(3, "a short one")
    flag: bool = setting(False, "a flag")
    a_rather_long_setting_name: Optional[str] = setting(None, "on the next line " * 8)
    items: list = dataclasses.field(default_factory=lambda: [1, 2])
    bare: float = 0.5


def test_settings_lines_align_wrap_and_take_descriptions_from_either_place() -> None:
    lines = settings_lines(_Toy, descriptions={"items": "from the mapping"}, width=60)
    assert lines[0] == "  short=3                       a short one"
    assert lines[1].startswith("  flag=false ") and lines[1].endswith("a flag")
    long_at = lines.index("  a_rather_long_setting_name=null")
    assert lines[long_at + 1].startswith(" " * 32 + "on the next line")
    assert all(len(line) <= 60 for line in lines)
    assert any(line.startswith("  items=[1,2] ") and line.endswith("from the mapping")
               for line in lines)
    assert lines[-1] == "  bare=0.5"
    assert settings_lines(_Toy, names=["bare"], prefix="x.") == ["  x.bare=0.5"]


def test_help_formatter_adds_a_missing_default_only() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="p", formatter_class=HelpFormatter)
    parser.add_argument("--n", type=int, default=5, help="a number")
    parser.add_argument("--out", default=None, help="folder (default: beside the run)")
    parser.add_argument("--pct", default="50%", help="a share")
    parser.add_argument("--quiet", action="store_true", help="say less")
    text = parser.format_help()
    assert "a number (default: 5)" in text and "(default: 50%)" in text
    assert "folder (default: beside the run)\n" in text and "say less\n" in text


# ---- progress output ---------------------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_log_stream_is_plain_lines() -> None:
    """Not a TTY: the outer bar prints whole lines, a bar inside it nothing."""
    log = io.StringIO()
    outer = progress_bar(total=4, desc="train", stream=log, interval_s=0.0)
    for _ in range(4):
        seen = list(progress_bar(range(3), desc="test/acc", transient=True, stream=log))
        assert seen == [0, 1, 2]
        outer.set_postfix({"loss": "0.5"})
        outer.update(1)
    outer.close()
    outer.close()  # a second close writes nothing
    text = log.getvalue()
    assert "\x1b[" not in text and "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("train: 0/4 [") and lines[-1].startswith("train: 4/4 [")
    assert lines[-1].endswith(" loss=0.5") and "test/acc" not in text
    assert len(lines) == 6  # the start, one per update (interval 0), the end
    # once the outer bar is closed, a bar is shown again (transient or not)
    assert list(progress_bar(range(2), desc="test/acc", transient=True, stream=log)) == [0, 1]
    assert log.getvalue().splitlines()[-1].startswith("test/acc: 2/2 [")


def test_progress_lines_are_throttled_and_iteration_closes() -> None:
    log = io.StringIO()
    items = list(progress_bar(range(100), desc="features", stream=log, interval_s=3600.0))
    assert items == list(range(100))
    assert log.getvalue().splitlines() == [line for line in log.getvalue().splitlines()
                                           if line.startswith("features: ")]
    assert [line.split(" [")[0] for line in log.getvalue().splitlines()] == [
        "features: 0/100", "features: 100/100"]


def test_progress_disabled_or_on_a_terminal() -> None:
    log = io.StringIO()
    bar = progress_bar(total=3, desc="x", enable=False, stream=log)
    bar.update(1)
    bar.set_postfix({"a": "1"})
    bar.close()
    assert log.getvalue() == "" and not isinstance(bar, LogLines)
    tty = _Terminal()
    assert list(progress_bar(range(3), desc="bar", stream=tty)) == [0, 1, 2]
    assert "\r" in tty.getvalue() and "bar" in tty.getvalue()  # a tqdm bar, as on a terminal
