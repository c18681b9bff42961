"""Learning curves: ``trainer.keep_steps`` keeps checkpoints, ``python -m levyjepa.study
--eval-at`` evaluates them, and a curve's point is the hand evaluation of its checkpoint."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_overrides import tiny_quickstart

import levyjepa.study as study_module
from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.eval.command import main as eval_main
from levyjepa.studies.curve_plot import BAND, plot_curves
from levyjepa.studies.curves import evaluate_steps
from levyjepa.studies.metrics import metrics_of
from levyjepa.studies.stats import t_interval
from levyjepa.study import main
from levyjepa.training.checkpoint import list_checkpoints, resolve_resume
from levyjepa.training.loop import train
from levyjepa.training.trained import load_trained

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVAL = ["progress=false", "pictures=false", "linear_steps=20"]
KEEP = ["trainer.max_steps=3", "trainer.checkpoint_every=1", "trainer.keep_checkpoints=1"]


def _train(out_dir: Path, *extra: str) -> dict[str, Any]:
    return train(load_recipe(QUICKSTART, tiny_quickstart(extra=[*KEEP, f"out_dir={out_dir}",
                                                                *extra])))


def _names(run_dir: Path) -> list[str]:
    return [c.name for c in list_checkpoints(run_dir)]


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 steps, a checkpoint at every step, 1 kept, and steps 0 and 1 listed in keep_steps."""
    run_dir = tmp_path_factory.mktemp("curves") / "run"
    _train(run_dir, "trainer.keep_steps=[0,1]")
    return run_dir


def _state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "trainer_state.json").read_text())


def test_keep_steps_keep_their_checkpoints_and_prune_the_others(kept_run: Path,
                                                                tmp_path: Path) -> None:
    assert _names(kept_run) == ["step_00000000", "step_00000001", "step_00000003"]  # 2 pruned
    assert [_state(c).get("kept") for c in list_checkpoints(kept_run)] == [True, True, None]
    assert resolve_resume("auto", kept_run).name == "step_00000003"  # the latest, not step 0
    # step 0 holds the initial weights: those of the untrained encoder the evaluation builds
    initial = load_trained(kept_run, checkpoint=kept_run / "checkpoints" / "step_00000000")
    untrained = load_trained(kept_run, untrained=True)
    start, fresh = initial.encoder.state_dict(), untrained.encoder.state_dict()
    assert initial.step == 0 and all(torch.equal(start[k], fresh[k]) for k in start)
    # a resume with no keep_steps (a key that may change) still keeps the marked ones
    resumed = tmp_path / "resumed"
    shutil.copytree(kept_run, resumed)
    summary = _train(resumed, "trainer.max_steps=5", "resume=auto")
    assert summary["steps_this_session"] == 2  # from step 3
    assert _names(resumed) == ["step_00000000", "step_00000001", "step_00000005"]
    # resuming from the step-0 checkpoint trains the run it continues, bit for bit
    again = tmp_path / "from_step_0"
    shutil.copytree(kept_run, again)
    for checkpoint in list_checkpoints(again)[1:]:
        shutil.rmtree(checkpoint)
    assert _train(again, "resume=auto")["steps_this_session"] == 3
    weights = [(run / "checkpoints" / "step_00000003" / "model.safetensors").read_bytes()
               for run in (kept_run, again)]
    assert weights[0] == weights[1]


def test_a_curve_point_is_the_hand_evaluation_of_its_checkpoint(kept_run: Path,
                                                                 tmp_path: Path) -> None:
    """The value the study records for a step is ``python -m levyjepa.eval RUN
    checkpoint=<that checkpoint>``'s, exactly (the evaluations run in this process here; the
    slow study test below runs them as the study does, in subprocesses)."""
    run_dir = tmp_path / "run"
    shutil.copytree(kept_run, run_dir)

    def in_process(args: list[str], log: Path, *, what: str, run_dir: Path) -> float:
        assert args[0] == "levyjepa.eval" and eval_main(args[1:]) == 0
        return 0.5

    final = {"step": 3, "classification/knn_top1": 0.5}  # the last step: its eval.json
    got = evaluate_steps(in_process, run_dir=run_dir, log=tmp_path / "log",
                         record_path=tmp_path / "seed_0.steps.json", steps=[0, 1, 3],
                         eval_args=EVAL, final=final, who="seed 0 arm A")
    assert list(got["curve"]) == ["0", "1", "3"] and got["steps_eval_s"] == 1.0
    assert got["curve"]["3"] == {"classification/knn_top1": 0.5}
    assert (run_dir / "eval_step_0.json").is_file() and (run_dir / "eval_step_1.json").is_file()
    checkpoint = run_dir / "checkpoints" / "step_00000000"  # the initial weights
    assert eval_main([str(run_dir), f"checkpoint={checkpoint}", "progress=false",
                      "linear_steps=20"]) == 0  # by hand, into eval.json
    by_hand = json.loads((run_dir / "eval.json").read_text())
    assert by_hand["step"] == 0 and len(metrics_of(by_hand)) == 2
    assert got["curve"]["0"] == metrics_of(by_hand)  # exactly equal
    at = {s: json.loads((run_dir / f"eval_step_{s}.json").read_text()) for s in (0, 1)}
    for key in ("knn", "linear", "test_features"):  # the whole evaluation, bit for bit
        assert at[0][key] == by_hand[key]
    assert at[1]["step"] == 1 and at[1]["test_features"] != at[0]["test_features"]
    # done steps are skipped
    calls: list[list[str]] = []
    again = evaluate_steps(lambda args, log, **_: calls.append(args) or 0.0, run_dir=run_dir,
                           log=tmp_path / "log", record_path=tmp_path / "seed_0.steps.json",
                           steps=[0, 1, 3], eval_args=EVAL, final=final, who="seed 0 arm A")
    assert not calls and again == got


# ---- the study command, with fake training and evaluation -----------------------------------


def _fake_value(arm: str, seed: int, step: int) -> float:
    return 0.1 + 0.01 * step + 0.02 * seed + {"levy": 0.05, "sup": 0.3}.get(arm, 0.0)


@pytest.fixture
def fake_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Training writes the checkpoints of its kept steps and its last (trainer.max_steps, else
    3); evaluation writes the value of the checkpoint's step into its ``out`` file."""
    calls: list[list[str]] = []

    def fake_call(args: list[str], log: Path, *, what: str, run_dir: Path) -> float:
        calls.append(list(args))
        settings = dict(a.split("=", 1) for a in args[2:] if "=" in a)
        if args[0] == "levyjepa.run":
            last = int(settings.get("trainer.max_steps", 3))
            kept = json.loads(settings.get("trainer.keep_steps", "[]"))
            for step in {last, *(s for s in kept if s <= last)}:
                folder = run_dir / "checkpoints" / f"step_{step:08d}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "trainer_state.json").write_text(json.dumps({"step": step}))
            return 2.0
        checkpoint = Path(settings.get("checkpoint") or list_checkpoints(run_dir)[-1])
        step = int(checkpoint.name.split("_")[1])
        arm, seed = run_dir.parent.name, int(run_dir.name.split("_")[1])
        Path(settings.get("out", run_dir / "eval.json")).write_text(json.dumps({
            "step": step, "segmentation/miou": _fake_value(arm, seed, step),
            "baselines": {"untrained": {"segmentation/miou": 0.08},
                          "pixels": {"segmentation/miou": 0.05}}}))
        return 1.0

    monkeypatch.setattr(study_module, "_call", fake_call)
    return calls


def test_a_study_draws_learning_curves_and_keeps_reference_arms_out(
        tmp_path: Path, fake_runs: list[list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    args = [QUICKSTART, QUICKSTART, QUICKSTART, "--names", "base,levy,sup", "--reference", "sup",
            "--seeds", "2", "--eval-at", "2,0", "--out", str(out), "trainer.max_steps=4"]
    assert main(args) == 0
    train = [c for c in fake_runs if c[0] == "levyjepa.run"]
    assert len(train) == 6 and all(c[-1] == "trainer.keep_steps=[0,2]" for c in train)
    steps = [c for c in fake_runs if c[0] == "levyjepa.eval" and any("checkpoint=" in a
                                                                     for a in c)]
    assert len(steps) == 12 and steps[0][-3:] == [
        f"checkpoint={out / 'base' / 'seed_0' / 'checkpoints' / 'step_00000000'}",
        f"out={out / 'base' / 'seed_0' / 'eval_step_0.json'}", "pictures=false"]
    saved = json.loads((out / "study.json").read_text())
    assert saved["compare"] == [["levy", "base"]] and saved["reference_arms"] == ["sup"]
    assert [(c["b"], c["a"]) for c in saved["results"]["segmentation/miou"]["comparisons"]] \
        == [("levy", "base")]
    curves = saved["curves"]
    assert curves["eval_at"] == [0, 2] and curves["steps"] == [0, 2, 4]
    assert curves["values"]["levy"]["1"]["segmentation/miou"] == {
        str(s): pytest.approx(_fake_value("levy", 1, s)) for s in (0, 2, 4)}
    at_2 = curves["summary"]["segmentation/miou"]["base"]["2"]
    expected = t_interval([_fake_value("base", s, 2) for s in range(2)]).as_dict()
    assert at_2 == pytest.approx(expected)
    assert curves["baselines"]["segmentation/miou"]["untrained"] == {
        "base": 0.08, "levy": 0.08, "sup": 0.08}
    assert saved["total_run_s"] == pytest.approx(6 * (2.0 + 1.0) + 12 * 1.0)
    text = (out / "study.md").read_text()
    assert "![learning curves](learning_curves.png)" in text
    assert "| step | base | levy | sup (reference) |" in text
    assert "| 2 | 0.13 | 0.18 | 0.43 |" in text  # means across seeds 0 and 1
    assert "- sup: `" in text and "(reference: not compared)" in text
    assert (out / "learning_curves.png").read_bytes().startswith(PNG_MAGIC)
    figure = plot_curves(saved, tmp_path / "again.png")
    panel = figure.axes[0]
    assert panel.get_title() == "segmentation/miou" and panel.get_xlabel() == "training step"
    lines = {line.get_label(): line for line in panel.get_lines()}
    assert lines["sup (quickstart), reference"].get_linestyle() == "--"
    assert list(lines["base (quickstart)"].get_xdata()) == [0, 2, 4]
    assert list(lines["untrained"].get_ydata()) == [0.08, 0.08]
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert {"base (quickstart)", BAND, "raw pixels"} <= set(legend)
    fake_runs.clear()
    assert main(args) == 0  # the same command: every run and step is done
    assert not fake_runs and capsys.readouterr().out.count("done, skipped") == 6 + 12


def test_steps_a_run_cannot_give_are_refused_in_one_line(
        tmp_path: Path, fake_runs: list[list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    args = [QUICKSTART, QUICKSTART, "--seeds", "1", "--out", str(out)]
    assert main([*args, "--eval-at", "0,5"]) == 2  # no max_steps: its epochs end at step 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "step(s) 5 beyond the last step of" in err
    assert "A/seed_0 (3)" in err
    assert main([*args, "--eval-at", "0,3"]) == 0  # the trained run is kept: no training again
    assert [c[0] for c in fake_runs].count("levyjepa.run") == 2
    capsys.readouterr()
    assert main([*args, "--eval-at", "0,1,3"]) == 2  # step 1 was passed without a checkpoint
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "trained past step(s) 1 without keeping" in err


@pytest.mark.parametrize(("extra", "expected"), [
    (["--eval-at", "0,x"], "--eval-at '0,x': give training steps >= 0, comma-separated"),
    (["--eval-at", "-5"], "--eval-at '-5': give training steps >= 0"),
    (["--eval-at", ""], "--eval-at '': give training steps"),
    (["--eval-at", "0,9", "trainer.max_steps=4"],
     "--eval-at: step(s) 9 beyond the last step of arm A (trainer.max_steps=4)"),
    (["--eval-at", "1", "trainer.keep_steps=[2]"], "'trainer.keep_steps=[2]': seed, out_dir"),
    (["--eval", "checkpoint=x"], "--eval 'checkpoint=x': out, untrained, task, checkpoint"),
    (["--reference", "C"], "--reference 'C': give arms of A, B"),
    (["--reference", "A"], "--reference 'A': at least two arms must remain to compare"),
    (["trainer.keep_steps=[-1]"], "trainer.keep_steps must list steps >= 0, got [-1]"),
    (["trainer.keep_steps=[a]"], "trainer.keep_steps[0]: Value 'a'"),
    (["trainer.keep_steps=3"], "trainer.keep_steps: Invalid value assigned"),
])
def test_bad_eval_at_and_keep_steps_are_one_line_with_status_2(
        extra: list[str], expected: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main([QUICKSTART, QUICKSTART, *extra, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "s").exists()  # nothing ran


def test_a_reference_arm_cannot_be_compared(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main([QUICKSTART, QUICKSTART, QUICKSTART, "--reference", "C", "--compare", "C:A",
                 "--out", str(tmp_path / "s")]) == 2
    assert "--compare 'C:A': C (--reference) are drawn for reference, never compared" in \
        capsys.readouterr().err
    with pytest.raises(ConfigError, match="trainer.keep_steps must list steps >= 0"):
        load_recipe(QUICKSTART, ["trainer.keep_steps=[0,-2]"])


# ---- a real tiny study ----------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_study_with_learning_curves_end_to_end(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """2 arms, 2 seeds, 2 steps, evaluated at steps 0 and 1 too; a point of the curve equals
    ``python -m levyjepa.eval RUN checkpoint=...`` run by hand, exactly."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the training and evaluation subprocesses
    out = tmp_path / "study"
    args = [QUICKSTART, QUICKSTART, "--seeds", "2", "--out", str(out), "--eval-at", "0,1",
            "--b", "priors.within.weight=1.0", "--eval", "pictures=false",
            "--eval", "linear_steps=20", *tiny_quickstart(extra=["trainer.max_steps=2"])]
    assert main(args) == 0
    saved = json.loads((out / "study.json").read_text())
    assert saved["curves"]["steps"] == [0, 1, 2]
    metric = "classification/linear_top1"
    for arm in ("A", "B"):
        for seed in ("0", "1"):
            assert set(saved["curves"]["values"][arm][seed][metric]) == {"0", "1", "2"}
    assert (out / "learning_curves.png").read_bytes().startswith(PNG_MAGIC)
    run_dir = out / "B" / "seed_1"
    checkpoint = run_dir / "checkpoints" / "step_00000001"
    hand = tmp_path / "hand.json"
    subprocess.run([sys.executable, "-m", "levyjepa.eval", str(run_dir), "progress=false",
                    "pictures=false", "linear_steps=20", f"checkpoint={checkpoint}",
                    f"out={hand}"], check=True, capture_output=True)
    by_hand = json.loads(hand.read_text())
    recorded = {m: saved["curves"]["values"]["B"]["1"][m]["1"] for m in saved["metrics"]}
    assert recorded == metrics_of(by_hand) and all(math.isfinite(v) for v in recorded.values())
    study_file = json.loads((run_dir / "eval_step_1.json").read_text())  # what it read
    for key in ("step", "knn", "linear", "test_features"):  # the whole evaluation, bit for bit
        assert study_file[key] == by_hand[key]
    capsys.readouterr()
    assert main(args) == 0  # done: every run and step is skipped
    assert capsys.readouterr().out.count("done, skipped") == 4 + 8
