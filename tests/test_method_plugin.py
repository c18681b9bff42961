"""A method written outside the library, from docs/extending.md alone, and the shipped method
plugin installed by its entry point: both register, train, and appear among the known methods."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import ROOT, read_metrics, tiny

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.training.loop import train

EXAMPLE = ROOT / "examples" / "method_plugin"
EXAMPLE_FILE = EXAMPLE / "levyjepa_example_method" / "align_uniform.py"
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"


def readme_method_code() -> str:
    """The Python block of the "A method" section of docs/extending.md."""
    text = (ROOT / "docs" / "extending.md").read_text()
    section = text.split("## A method", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section shows one complete method"
    return blocks[0]


def test_the_readme_shows_the_shipped_example_verbatim() -> None:
    assert readme_method_code() == EXAMPLE_FILE.read_text()


def test_a_method_from_the_readme_registers_and_trains(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "readme_align_uniform.py").write_text(
        readme_method_code().replace('"align_uniform"', '"_readme_align_uniform"'))
    monkeypatch.syspath_prepend(str(lab))
    run = tmp_path / "run"
    plugin = ["plugins=[readme_align_uniform]"]
    cfg = load_recipe(QUICKSTART, tiny(run, *plugin, "method={name: _readme_align_uniform}",
                                       "views.local_views=0", "trainer.max_steps=2", "log.every=1"))
    assert train(cfg)["steps"] == 2
    events = [e for e in read_metrics(run) if "train/loss" in e]
    assert [e["step"] for e in events] == [1, 2]
    for event in events:  # its own terms, and the quickstart's prior on its token field
        assert {"train/align", "train/uniform", "train/within", "train/probe_loss"} <= set(event)
        assert 0.0 <= event["train/align"] <= 4.0 and event["train/uniform"] <= 0.0
    with pytest.raises(ConfigError, match=r"unknown method '_readme_align_unifrom' \(did you "
                                          r"mean '_readme_align_uniform'\?\); known: "
                                          r"_readme_align_uniform, .*lejepa.*vicreg"):
        load_recipe(QUICKSTART, tiny(run, *plugin, "method={name: _readme_align_unifrom}"))


def test_the_example_method_plugin_installed_by_entry_point(tmp_path: Path) -> None:
    """``pip install`` the shipped plugin into a temporary target; the entry point alone (no
    ``plugins:`` key) registers ``align_uniform``, which trains and is listed when misspelt."""
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                "__pycache__"))
    target = tmp_path / "env"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}

    def runner(*overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "levyjepa.run", str(QUICKSTART),
                               *overrides], capture_output=True, text=True, cwd=ROOT, env=env,
                              timeout=300)

    run = tmp_path / "run"
    proc = runner(*tiny(run, "method={name: align_uniform}", "views.local_views=0",
                        "trainer.max_steps=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["method"] == "align_uniform" and summary["steps"] == 2
    assert "train/align" in summary["final"]
    proc = runner(*tiny(tmp_path / "x", "method={name: align_unifrom}"), "--print-config")
    assert proc.returncode == 2
    assert "unknown method 'align_unifrom' (did you mean 'align_uniform'?)" in proc.stderr
