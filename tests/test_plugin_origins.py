"""A run trained with a ``plugins:`` module records where it found it (``plugins.json``), and
evaluating the run where the module is not importable says where it was (issue 23, item 10)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from test_run_safety import QUICKSTART, TINY

from levyjepa.config import plugins
from levyjepa.eval import main as eval_main
from levyjepa.run import main

PLUGIN = textwrap.dedent("""
    from levyjepa import PRIORS
    from levyjepa.priors.sigreg import SIGReg

    @PRIORS.register("_test_sigreg_from_a_lab_folder")
    class LabSIGReg(SIGReg):
        '''SIGReg under another name, registered by a plugin package.'''
""")


def test_evaluation_from_elsewhere_names_the_folder_the_plugin_came_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab"
    (lab / "lab_priors").mkdir(parents=True)
    (lab / "lab_priors" / "__init__.py").write_text("")
    (lab / "lab_priors" / "sigreg_copy.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(lab))
    out = tmp_path / "run"
    assert main([QUICKSTART, *TINY, f"out_dir={out}", "trainer.max_steps=1",
                 "plugins=[lab_priors.sigreg_copy]",
                 "method.sigreg.name=_test_sigreg_from_a_lab_folder"]) == 0
    capsys.readouterr()
    recorded = json.loads((out / "plugins.json").read_text())
    file = lab.resolve() / "lab_priors" / "sigreg_copy.py"
    assert recorded == {"lab_priors.sigreg_copy": {"file": str(file),
                                                   "path_entry": str(lab.resolve())}}
    # the evaluation runs where the module is not importable
    sys.path.remove(str(lab))
    saved = {name: sys.modules.pop(name) for name in list(sys.modules)
             if name.startswith("lab_priors")}
    monkeypatch.setattr(plugins, "_loaded", plugins._loaded - {"lab_priors.sigreg_copy"})
    assert eval_main([str(out), "k=2", "linear_steps=2", "pictures=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("levyjepa: error: ") and len(err.splitlines()) == 1
    assert err.endswith(f"the run imported 'lab_priors.sigreg_copy' from {file}: run this "
                        f"command from {lab.resolve()} or with PYTHONPATH={lab.resolve()}")
    sys.modules.update(saved)  # as with PYTHONPATH set: the module (registered once) is back
    assert eval_main([str(out), "k=2", "linear_steps=2", "pictures=false"]) == 0
