"""Ctrl-C and SIGTERM during training (issue 23, items 3 and 4): the step finishes, a checkpoint
is written at it, one line says how to continue, the exit status is 128 + the signal, and the
continued run equals an uninterrupted one; the same signal twice stops at once; a run that
failed before its first step does not block its own rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_run_safety import QUICKSTART, ROOT, TINY, assert_same_run, one_line, train_events

from levyjepa.run import main
from levyjepa.training.checkpoint import list_checkpoints
from levyjepa.training.interrupt import StopSignals, resume_command

# many epochs, so that the run is still training when the signal comes; no epoch-end probe
LONG = [*TINY, "trainer.epochs=500", "trainer.eval_every=0"]


def interrupted_run(out: Path, signum: int, *extra: str) -> tuple[int, str, int]:
    """Start a training process in its own process group once 3 steps are logged, send
    ``signum``: SIGINT to the whole group (as a terminal's Ctrl-C does: loader workers
    included), SIGTERM to the main process (as ``kill PID`` does); returns the exit status,
    standard error and the last step logged before the signal."""
    proc = subprocess.Popen([sys.executable, "-m", "levyjepa.run", QUICKSTART, *LONG,
                             f"out_dir={out}", *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    metrics, deadline, seen = out / "metrics.jsonl", time.monotonic() + 240, 0
    while seen < 3:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.02)
        lines = metrics.read_text().splitlines() if metrics.is_file() else []
        seen = len([line for line in lines if line.endswith("}")])
    if signum in (signal.SIGINT, signal.SIGUSR1):  # a terminal's Ctrl-C, SLURM's warning
        os.killpg(proc.pid, signum)
    else:
        os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=240)
    return proc.returncode, err, seen


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_checkpoints_the_step_says_how_to_continue_and_resumes_exactly(
        tmp_path: Path, signum: int) -> None:
    out = tmp_path / "run"
    workers = ["data.workers=1"]  # Ctrl-C reaches the loader worker too
    status, err, seen = interrupted_run(out, signum, *workers)
    name = signal.Signals(signum).name
    assert status == 128 + signum, err
    line = one_line(err)
    step = train_events(out)[-1]["step"]
    assert step >= seen and [c.name for c in list_checkpoints(out)][-1] == f"step_{step:08d}"
    assert line.startswith(f"levyjepa: stopped by {name} after step {step}, checkpoint ")
    assert line.endswith(f"resume=auto out_dir={out}") and "-m levyjepa.run " in line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == step and summary["stopped"].startswith(name)
    # continue as the line says, two steps further; and the same run without interruption
    more = [f"trainer.max_steps={step + 2}", *workers]
    assert main([QUICKSTART, *LONG, *more, f"out_dir={out}", "resume=auto"]) == 0
    straight = tmp_path / "straight"
    assert main([QUICKSTART, *LONG, *more, f"out_dir={straight}"]) == 0
    assert_same_run(out, straight, steps=step + 2)


def test_the_first_signal_asks_the_second_stops_at_once() -> None:
    said: list[str] = []
    previous = signal.getsignal(signal.SIGINT)
    with StopSignals(say=said.append) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM and len(said) == 1
        os.kill(os.getpid(), signal.SIGINT)  # another signal (torchrun's agent): no escalation
        assert stop.signum == signal.SIGTERM and len(said) == 1
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is previous
    assert said == ["levyjepa: SIGTERM: stopping after this step with a checkpoint (SIGTERM "
                    "again stops at once, without one)"]


def test_the_resume_command_keeps_the_arguments_and_names_the_run() -> None:
    got = resume_command(["r.yaml", "seed=1", "overwrite=true", "out_dir=x", "a b=c"],
                         Path("runs/x"), distributed=False)
    assert got.endswith(" -m levyjepa.run r.yaml seed=1 'a b=c' resume=auto out_dir=runs/x")
    assert resume_command(["r.yaml"], "o", distributed=True) == (
        "the same launcher with -m levyjepa.run r.yaml resume=auto out_dir=o")


def test_a_run_that_failed_before_its_first_step_does_not_block_its_rerun(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    args = [QUICKSTART, *TINY, f"out_dir={out}", "trainer.max_steps=1"]

    def failing_first_batch(*a, **k):  # e.g. a decoder or a plugin failing on the first batch
        raise RuntimeError("the first batch failed")

    with monkeypatch.context() as patch:
        patch.setattr("levyjepa.training.loop._view_groups", failing_first_batch)
        with pytest.raises(RuntimeError, match="first batch"):
            main(args)
    capsys.readouterr()
    assert (out / "config.yaml").is_file() and not list_checkpoints(out)
    assert main(args) == 0
    assert (f"out_dir: '{out}' holds a run that stopped before saving anything (no checkpoint, "
            "no logged step): starting there afresh") in capsys.readouterr().out
    assert [c.name for c in list_checkpoints(out)] == ["step_00000001"]
    # a run that has saved something is still protected
    assert main(args) == 2
    assert "already holds a run" in one_line(capsys.readouterr().err)


def test_an_interruption_outside_the_steps_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second Ctrl-C, or one while the run is being built or evaluated: exit 130, one line."""
    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr("levyjepa.training.loop.train", interrupted)
    assert main([QUICKSTART, *TINY, f"out_dir={tmp_path / 'run'}"]) == 130
    assert one_line(capsys.readouterr().err) == (
        "levyjepa: interrupted; the run's last complete checkpoint (if any) is where "
        "resume=auto continues")
