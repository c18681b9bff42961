"""The run directory and the training state stay sound: no mixed runs, no poisoned checkpoints.

Issue 12, items 1-5: a non-finite loss or gradient stops the run before the update (or skips
it), checkpoints are always finite, a rerun into a run directory is refused unless it resumes
or overwrites, a resume with a changed recipe is refused unless the change is allowed, and a
run killed by SIGKILL while writing a checkpoint resumes exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_overrides import tiny_quickstart

from levyjepa.run import main
from levyjepa.training.checkpoint import list_checkpoints
from levyjepa.training.nonfinite import NonFiniteError, check_finite_state

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")
TINY = tiny_quickstart(extra=["priors.within=null"])

NAN_PRIOR = textwrap.dedent("""
    import torch
    from levyjepa import PRIORS
    from levyjepa.priors.sigreg import SIGReg

    @PRIORS.register("_test_sigreg_nan_at")
    class SIGRegNaNAt(SIGReg):
        '''SIGReg, made NaN (value and gradient) at one step: a controlled divergence.'''

        def __init__(self, *, nan_at_step: int = -1, slices: int = 16) -> None:
            super().__init__(slices=slices)
            self.nan_at_step = nan_at_step

        def forward(self, proj, *, step):
            value = super().forward(proj, step=step)
            return value * float("nan") if step == self.nan_at_step else value
""")


def run(out: Path, *extra: str) -> int:
    return main([QUICKSTART, *TINY, f"out_dir={out}", *extra])


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("levyjepa: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def train_events(run_dir: Path) -> list[dict]:
    events = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [e for e in events if "train/inv" in e]


def assert_same_run(resumed: Path, straight: Path, *, steps: int) -> None:
    """A continued run logged steps 1..``steps`` with the losses of an uninterrupted one, and
    ends with its weights."""
    a, b = train_events(straight), train_events(resumed)
    assert [e["step"] for e in b] == list(range(1, steps + 1))
    for ea, eb in zip(a, b):
        for key in ("train/loss", "train/sigreg", "train/probe_loss", "train/lr"):
            assert eb[key] == pytest.approx(ea[key], rel=1e-6), (ea["step"], key)
    wa = load_file(str(list_checkpoints(straight)[-1] / "model.safetensors"))
    wb = load_file(str(list_checkpoints(resumed)[-1] / "model.safetensors"))
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-6, atol=1e-7)


def finite_checkpoint(ckpt: Path) -> bool:
    weights = load_file(str(ckpt / "model.safetensors"))
    optim = torch.load(ckpt / "optimizer.bin", weights_only=False)
    moments = [v for s in optim["state"].values() for v in s.values()
               if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return all(bool(t.isfinite().all()) for t in [*weights.values(), *moments])


@pytest.fixture
def nan_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (tmp_path / "nan_prior_plugin.py").write_text(NAN_PRIOR)
    monkeypatch.syspath_prepend(str(tmp_path))
    return ["plugins=[nan_prior_plugin]", "method.sigreg.name=_test_sigreg_nan_at"]


def test_divergent_learning_rate_stops_in_one_line_with_only_finite_checkpoints(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    status = run(out, "optim.net_lr_bs256=1e5", "optim.warmup_epochs=0", "trainer.epochs=5",
                 "trainer.checkpoint_every=1", "trainer.keep_checkpoints=100")
    line = one_line(capsys.readouterr().err)
    assert status == 3
    assert line.startswith("levyjepa: stopped: step ") and "non-finite" in line
    step = int(line.split("step ")[1].split(":")[0])
    ckpts = list_checkpoints(out)
    assert ckpts and all(finite_checkpoint(c) for c in ckpts)
    assert ckpts[-1].name == f"step_{step - 1:08d}" and ckpts[-1].name in line
    # the step the message names is the metrics line that shows the non-finite values
    named = [e for e in train_events(out) if e["step"] == step]
    assert len(named) == 1 and "train/grad_norm" in line
    assert not torch.isfinite(torch.tensor(named[0]["train/grad_norm"]))
    assert all(torch.isfinite(torch.tensor(e["train/grad_norm"]))
               for e in train_events(out) if e["step"] < step)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] in line and summary["steps"] == step - 1


def test_nan_stops_and_resume_auto_continues_exactly_from_the_last_good_checkpoint(
        tmp_path: Path, nan_plugin: list[str], capsys: pytest.CaptureFixture) -> None:
    common = [*nan_plugin, "trainer.epochs=2", "trainer.checkpoint_every=1", "trainer.eval_every=0"]
    straight = tmp_path / "straight"
    assert run(straight, *common) == 0
    broken = tmp_path / "broken"
    # step index 4 is the 5th optimiser step: metrics line 5
    assert run(broken, *common, "method.sigreg.nan_at_step=4") == 3
    line = one_line(capsys.readouterr().err)
    assert "step 5: non-finite train/sigreg" in line and "train/grad_norm" in line
    assert [c.name for c in list_checkpoints(broken)] == ["step_00000003", "step_00000004"]
    assert all(finite_checkpoint(c) for c in list_checkpoints(broken))
    # the divergence fixed (the prior no longer injects it), the run continues from step 4
    assert run(broken, *common, "method.sigreg.nan_at_step=-1", "resume=auto",
               "resume_changes=[method.sigreg.nan_at_step]") == 0
    assert "changed on purpose" in capsys.readouterr().out
    a, b = train_events(straight), train_events(broken)
    assert [e["step"] for e in b] == list(range(1, 9))
    for ea, eb in zip(a, b):
        for key in ("train/loss", "train/sigreg", "train/probe_loss", "train/lr"):
            assert eb[key] == pytest.approx(ea[key], rel=1e-6), (ea["step"], key)


def test_on_nonfinite_skip_drops_the_update_and_counts_it(tmp_path: Path,
                                                         nan_plugin: list[str]) -> None:
    out = tmp_path / "run"
    assert run(out, *nan_plugin, "method.sigreg.nan_at_step=1", "trainer.max_steps=4",
               "trainer.on_nonfinite=skip") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["skipped_steps"] == 1
    assert [e.get("train/skipped_steps", 0) for e in train_events(out)] == [0, 1, 1, 1]
    assert finite_checkpoint(list_checkpoints(out)[-1])


def test_checkpoints_refuse_a_non_finite_state() -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    check_finite_state(model, optimizer)  # finite: no error
    optimizer.state[model.weight]["exp_avg"][0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match="1 optimizer-state tensor"):
        check_finite_state(model, optimizer)
    with torch.no_grad():
        model.bias[0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"1 model tensor\(s\) \(bias\)"):
        check_finite_state(model, optimizer)


def test_a_run_into_a_run_directory_is_refused_unless_resumed_or_overwritten(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert run(out, "trainer.max_steps=2") == 0
    before = (out / "metrics.jsonl").read_text()
    (out / "eval.json").write_text("{}")  # an old evaluation of this run
    (out / "notes.txt").write_text("mine")  # not a run file: never removed
    capsys.readouterr()
    assert run(out, "trainer.max_steps=3") == 2
    line = one_line(capsys.readouterr().err)
    assert "already holds a run" in line and "resume=auto" in line and "overwrite=true" in line
    assert (out / "metrics.jsonl").read_text() == before  # nothing touched
    assert run(out, "trainer.max_steps=1", "overwrite=true") == 0
    assert [e["step"] for e in train_events(out)] == [1]
    assert [c.name for c in list_checkpoints(out)] == ["step_00000001"]
    assert not (out / "eval.json").exists() and (out / "notes.txt").read_text() == "mine"


def test_resume_with_a_changed_recipe_lists_the_keys(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert run(out, "trainer.max_steps=2") == 0
    config = (out / "config.yaml").read_text()
    capsys.readouterr()
    assert run(out, "trainer.max_steps=3", "resume=auto", "optim.net_lr_bs256=0.01",
               "trainer.epochs=7") == 2
    line = one_line(capsys.readouterr().err)
    assert "optim.net_lr_bs256: 0.002 -> 0.01" in line and "trainer.epochs: 5 -> 7" in line
    assert "resume_changes=[optim.net_lr_bs256,trainer.epochs]" in line
    assert (out / "config.yaml").read_text() == config
    # keys that may change on resume (documented in levyjepa/training/run_dir.py)
    assert run(out, "trainer.max_steps=3", "resume=auto", "log.every=2", "data.workers=1",
               "trainer.keep_checkpoints=3") == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 3


def test_resume_auto_without_a_checkpoint_says_it_starts_fresh(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert run(out, "trainer.max_steps=1", "resume=auto") == 0
    assert f"resume=auto: no complete checkpoint in {out}; starting a fresh run" in (
        capsys.readouterr().out)


def test_out_dir_naming_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "a_file"
    target.write_text("x")
    assert run(target, "trainer.max_steps=1") == 2
    assert "is not a directory" in one_line(capsys.readouterr().err)


KILLER = textwrap.dedent("""
    # Train, but die by SIGKILL in the middle of writing the checkpoint of step KILL_STEP.
    import os, signal, sys
    import torch
    import levyjepa.training.checkpoint as ckpt
    from levyjepa.run import main

    kill_step, point = int(sys.argv[1]), sys.argv[2]
    saving = {"step": None}
    real_save, real_torch_save, real_json = ckpt.save_checkpoint, torch.save, ckpt.atomic_write_json

    def save_checkpoint(accelerator, run_dir, state, **kw):
        saving["step"] = state["step"]
        return real_save(accelerator, run_dir, state, **kw)

    def die_if(now):
        if now and saving["step"] == kill_step:
            os.kill(os.getpid(), signal.SIGKILL)

    def torch_save(*a, **kw):  # after the weights, before the optimizer state
        die_if(point == "between_files")
        return real_torch_save(*a, **kw)

    def write_json(path, obj):  # every file written, before the trainer state and the rename
        die_if(point == "before_rename")
        return real_json(path, obj)

    ckpt.save_checkpoint, ckpt.atomic_write_json = save_checkpoint, write_json
    torch.save = torch_save
    import levyjepa.training.run_end  # the loop's checkpoint() imports save_checkpoint itself
    levyjepa.training.run_end.save_checkpoint = save_checkpoint
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.parametrize("point", ["between_files", "before_rename"])
def test_sigkill_while_writing_a_checkpoint_resumes_exactly(tmp_path: Path, point: str) -> None:
    common = [*TINY, "trainer.epochs=2", "trainer.checkpoint_every=2", "trainer.eval_every=0"]
    straight = tmp_path / "straight"
    assert main([QUICKSTART, *common, f"out_dir={straight}"]) == 0
    killed = tmp_path / "killed"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run([sys.executable, str(script), "4", point, QUICKSTART, *common,
                           f"out_dir={killed}"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert [c.name for c in list_checkpoints(killed)] == ["step_00000002"]
    assert list((killed / "checkpoints").glob(".partial-step_00000004"))  # the torn write
    assert main([QUICKSTART, *common, f"out_dir={killed}", "resume=auto"]) == 0
    assert_same_run(killed, straight, steps=8)
    assert not list((killed / "checkpoints").glob(".partial-*"))
