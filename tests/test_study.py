"""`python -m levyjepa.study`: its statistics, its report, resuming, bad input, one tiny study."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_overrides import tiny_quickstart

import levyjepa.study as study_module
from levyjepa.studies.stats import Interval, paired_difference, t_interval, verdict
from levyjepa.study import RunFailed, baselines_of, main, metrics_of

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T_975_3 = 3.182446305284263  # t(0.975, 3 degrees of freedom), from a printed table
T_975_2 = 4.302652729911275  # t(0.975, 2)


# ---- statistics ---------------------------------------------------------------------------


def test_t_interval_golden_values() -> None:
    # values 1, 2, 3, 4: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5;
    # sd = sqrt(5 / 3) = 1.2909944; se = sd / sqrt(4) = 0.6454972;
    # half width = 3.1824463 * 0.6454972 = 2.0542603 -> [0.4457397, 4.5542603]
    got = t_interval([1.0, 2.0, 3.0, 4.0])
    assert got.mean == 2.5 and got.n == 4
    assert got.sd == pytest.approx(math.sqrt(5 / 3), rel=1e-12)
    assert got.half_width == pytest.approx(T_975_3 * math.sqrt(5 / 3) / 2, rel=1e-9)
    assert (got.low, got.high) == (pytest.approx(0.4457397, abs=1e-6),
                                   pytest.approx(4.5542603, abs=1e-6))
    # 90%: t(0.95, 3) = 2.3533634 -> half width 2.3533634 * 0.6454972 = 1.5190895
    assert t_interval([1.0, 2.0, 3.0, 4.0], 0.9).half_width == pytest.approx(1.5190895, abs=1e-6)
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0], 1.0)


def test_paired_interval_is_not_the_difference_of_unpaired_intervals() -> None:
    a, b = [0.30, 0.40, 0.50], [0.32, 0.43, 0.525]  # a large seed effect shared by both arms
    differences, paired = paired_difference(a, b)
    assert differences == pytest.approx([0.02, 0.03, 0.025])
    # differences: mean 0.025, sd 0.005; half width 4.3026527 * 0.005 / sqrt(3) = 0.0124207
    assert paired.mean == pytest.approx(0.025)
    assert (paired.low, paired.high) == (pytest.approx(0.0125793, abs=1e-6),
                                         pytest.approx(0.0374207, abs=1e-6))
    ia, ib = t_interval(a), t_interval(b)
    assert ia.high > ib.low  # side by side, the arms' intervals overlap widely ...
    assert not paired.contains(0.0)  # ... yet pairing detects the difference
    unpaired_half = math.hypot(ia.half_width, ib.half_width)
    assert unpaired_half > 10 * paired.half_width
    with pytest.raises(ValueError, match="differ in number"):
        paired_difference([1.0], [1.0, 2.0])


def test_verdict_wording_and_one_seed() -> None:
    _, straddles = paired_difference([0.5, 0.6, 0.7], [0.52, 0.58, 0.71])
    assert straddles.contains(0.0)
    assert verdict(straddles).startswith("no detectable difference (95% CI [")
    _, higher = paired_difference([0.5, 0.6, 0.7], [0.55, 0.66, 0.74])  # d = .05, .06, .04
    assert verdict(higher) == "B higher by 0.05 (95% CI [0.02516, 0.07484])"
    _, lower = paired_difference([0.55, 0.66, 0.74], [0.5, 0.6, 0.7])
    assert verdict(lower, name_b="levy").startswith("levy lower by 0.05 (95% CI [-0.07484")
    one = t_interval([0.3])
    assert one.mean == 0.3 and one.n == 1 and not one.defined and math.isnan(one.low)
    assert not one.contains(0.3)
    assert verdict(paired_difference([0.3], [0.4])[1]) == ("no verdict: 1 seed, at least 3 are "
                                                           "needed")
    assert t_interval([]).n == 0 and math.isnan(t_interval([]).mean)
    assert one.as_dict() == {"mean": 0.3, "low": None, "high": None, "n": 1, "sd": None,
                             "confidence": 0.95}
    assert Interval(1.0, 0.5, 1.5, 3, 0.2).half_width == 0.5


def test_null_coverage_and_power_with_three_seeds() -> None:
    rng = np.random.default_rng(1234)
    studies, n = 2000, 3
    seed_effect = rng.normal(0.0, 0.05, size=(studies, n))  # shared by both arms of a seed
    a = 0.4 + seed_effect + rng.normal(0.0, 0.01, size=(studies, n))
    b = 0.4 + seed_effect + rng.normal(0.0, 0.01, size=(studies, n))  # same law: the null
    covered = sum(paired_difference(list(x), list(y))[1].contains(0.0) for x, y in zip(a, b))
    assert 0.93 <= covered / studies <= 0.97
    # a true difference of 10 noise standard deviations of d (0.1 against sd 0.01 * sqrt(2))
    shifted = b[:500] + 0.1
    detected = sum(verdict(paired_difference(list(x), list(y))[1]).startswith("B higher")
                   for x, y in zip(a[:500], shifted))
    assert detected / 500 >= 0.99


# ---- the eval.json contract ---------------------------------------------------------------


def test_metrics_and_baselines_of_eval_json() -> None:
    new = {"segmentation/miou": 0.41, "tracking/delta_avg": 1, "run_dir": "x", "flag/x": True,
           "knn": {"top1": 0.2}, "baselines": {"untrained": {"segmentation/miou": 0.1},
                                               "pixels": {"tracking/delta_avg": 0.3}}}
    assert metrics_of(new) == {"segmentation/miou": 0.41, "tracking/delta_avg": 1.0}
    assert baselines_of(new) == {"untrained": {"segmentation/miou": 0.1},
                                 "pixels": {"tracking/delta_avg": 0.3}}
    old = {"knn": {"k": 20, "top1": 0.25}, "linear": {"top1": 0.5, "train_top1": 1.0}}
    assert metrics_of(old) == {"classification/knn_top1": 0.25,
                               "classification/linear_top1": 0.5}
    assert baselines_of(old) == {} and metrics_of({}) == {}


# ---- the command, with fake training and evaluation ---------------------------------------


def _fake_value(arm: str, seed: int) -> float:
    return 0.40 + 0.02 * seed + (0.05 + 0.004 * seed * seed if arm.endswith("levy") else 0.0)


@pytest.fixture
def fake_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace the subprocesses: training records its arguments, evaluation writes eval.json."""
    calls: list[list[str]] = []

    def fake_call(args: list[str], log: Path, *, what: str, run_dir: Path) -> float:
        calls.append(list(args))
        if args[0] == "levyjepa.eval":
            seed, arm = int(run_dir.name.split("_")[1]), run_dir.parent.name
            if (run_dir.parent.parent / "fail").read_text() == f"{arm} {seed}":
                raise RunFailed(f"evaluation of {run_dir} failed (exit status 2): boom "
                                f"(log: {log})")
            value = _fake_value(arm, seed)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "eval.json").write_text(json.dumps({
                "segmentation/miou": value, "tracking/delta_avg": 0.5 + 0.01 * seed,
                "segmentation/only_b": 1.0} if arm == "levy" else {
                "segmentation/miou": value, "tracking/delta_avg": 0.5 + 0.01 * seed,
                "baselines": {"untrained": {"segmentation/miou": 0.3},
                              "pixels": {"segmentation/miou": 0.2 + 0.01 * seed}}}))
        return 1.5

    monkeypatch.setattr(study_module, "_call", fake_call)
    # whatever tasks the eval command knows today: the fake evaluation takes any
    monkeypatch.setattr("levyjepa.eval.parse_overrides", lambda items: (None, []))
    return calls


def test_study_resumes_reports_and_stops_on_a_failed_run(
        tmp_path: Path, fake_calls: list[list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    out.mkdir()
    (out / "fail").write_text("levy 2")
    args = [QUICKSTART, QUICKSTART, "--out", str(out), "--names", "base,levy", "--tasks",
            "segmentation,tracking", "--b", "priors.within.weight=1.0", "--eval", "k=5",
            "trainer.max_steps=3"]
    assert main(args) == 1  # the last run fails: one line naming its folder and log
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out / "levy" / "seed_2") in err and "log:" in err
    assert len(json.loads((out / "study.json").read_text())["runs"]) == 5  # kept so far
    train = [c for c in fake_calls if c[0] == "levyjepa.run"]
    assert train[0] == ["levyjepa.run", QUICKSTART, "seed=0", f"out_dir={out / 'base' / 'seed_0'}",
                        "resume=auto", "trainer.max_steps=3"]
    assert train[1][-2:] == ["trainer.max_steps=3", "priors.within.weight=1.0"]  # arm B's last
    assert fake_calls[1] == ["levyjepa.eval", str(out / "base" / "seed_0"), "progress=false",
                             "task=segmentation,tracking", "k=5"]
    (out / "fail").write_text("")
    fake_calls.clear()
    (out / "base" / "seed_1.record.json").unlink()  # as if seed 1 of base was interrupted
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("done, skipped") == 4 and "seed 2 arm base: done, skipped" in printed
    assert [c[2] for c in fake_calls if c[0] == "levyjepa.run"] == ["seed=1", "seed=2"]
    assert all("resume=auto" in c for c in fake_calls if c[0] == "levyjepa.run")
    saved: dict[str, Any] = json.loads((out / "study.json").read_text())
    assert saved["metrics"] == ["segmentation/miou", "tracking/delta_avg"]
    assert saved["missing_metrics"] == ["segmentation/only_b"]
    miou = saved["results"]["segmentation/miou"]
    assert miou["arms"]["levy"]["values"] == pytest.approx([_fake_value("levy", s)
                                                           for s in range(3)])
    assert miou["difference"]["values"] == pytest.approx([0.05, 0.054, 0.066])
    assert miou["verdict"].startswith("levy higher by 0.05667")
    assert miou["baselines"] == {"untrained": {"base": 0.3},
                                 "pixels": {"base": pytest.approx(0.21)}}
    assert saved["results"]["tracking/delta_avg"]["verdict"].startswith("no detectable")
    assert saved["total_run_s"] == pytest.approx(6 * 2 * 1.5)
    text = (out / "study.md").read_text()
    # base: 0.40, 0.42, 0.44; sd 0.02; half width 4.3026527 * 0.02 / sqrt(3) = 0.0496828
    assert "| segmentation/miou | 0.42 [0.3703, 0.4697] |" in text
    assert "- baseline raw pixels (mean across seeds): base 0.21" in text
    assert "Verdict: levy higher by 0.05667" in text and "task=segmentation,tracking" in text
    assert (out / "study.png").read_bytes().startswith(PNG_MAGIC)


def test_parallel_runs_report_as_the_sequential_study_does(
        tmp_path: Path, fake_calls: list[list[str]], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    def study_of(parallel: int, fail: str) -> tuple[int, Path]:
        out = tmp_path / f"parallel_{parallel}_{fail.replace(' ', '_') or 'ok'}"
        out.mkdir()
        (out / "fail").write_text(fail)
        args = [QUICKSTART, QUICKSTART, "--out", str(out), "--names", "base,levy",
                "--tasks", "segmentation", "--b", "priors.within.weight=1.0",
                "--parallel", str(parallel), "trainer.max_steps=3"]
        return main(args), out

    status, sequential = study_of(1, "")
    assert status == 0
    threads: set[str] = set()
    real = study_module._call

    def record_thread(*args: Any, **kwargs: Any) -> float:
        threads.add(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(study_module, "_call", record_thread)
    status, parallel = study_of(3, "")
    assert status == 0 and len(threads) > 1  # the runs were spread over the pool's threads
    one = json.loads((sequential / "study.json").read_text())
    many = json.loads((parallel / "study.json").read_text())
    assert [(r["arm"], r["seed"]) for r in many["runs"]] == [
        (r["arm"], r["seed"]) for r in one["runs"]]  # the sequential order
    assert many["results"] == one["results"] and many["learned"] == one["learned"]
    # a failed run: the others finish and are reported, then the failure, one line, status 1
    capsys.readouterr()
    status, failed = study_of(3, "base 1")
    assert status == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(failed / "base" / "seed_1") in err
    assert len(json.loads((failed / "study.json").read_text())["runs"]) == 5
    assert (failed / "levy" / "seed_2" / "eval.json").is_file()


def test_parallel_below_one_is_refused(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main([QUICKSTART, QUICKSTART, "--parallel", "0", "--out", str(tmp_path / "s")]) == 2
    assert "--parallel 0: give at least 1 run at once" in capsys.readouterr().err


def test_a_failed_subprocess_is_one_line_naming_the_run_and_its_log(tmp_path: Path) -> None:
    log, run_dir = tmp_path / "A" / "seed_0.log", tmp_path / "A" / "seed_0"
    with pytest.raises(RunFailed) as caught:  # python -m json.tool MISSING: fails at once
        study_module._call(["json.tool", str(tmp_path / "missing.json")], log,
                           what="training", run_dir=run_dir)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"training of {run_dir} failed (exit ")
    assert "missing.json" in message and message.endswith(f"(log: {log})")
    assert log.read_text().startswith("$ ")  # the command, then its output


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    (["missing.yaml", QUICKSTART], "RECIPE_A: recipe file not found: missing.yaml"),
    ([QUICKSTART, "nowhere/b.yaml"], "RECIPE_B: recipe file not found: nowhere/b.yaml"),
    ([QUICKSTART, QUICKSTART, "--seeds", "0"], "--seeds 0: a study needs at least 1 seed"),
    ([QUICKSTART, QUICKSTART, "seed=3"], "override 'seed=3': seed, out_dir, resume, overwrite"),
    ([QUICKSTART, QUICKSTART, "--b", "gamma"], "arm override 'gamma' is not of the form"),
    ([QUICKSTART, QUICKSTART, "--eval", "out=x.json"], "--eval 'out=x.json': out, untrained"),
    ([QUICKSTART, QUICKSTART, "--eval", "k=0"], "k=0 is out of range"),
    ([QUICKSTART, QUICKSTART, "--names", "same,same"], "--names 'same,same': give two"),
    ([QUICKSTART, QUICKSTART, "--tasks", "a b"], "--tasks 'a b': give comma-separated"),
    ([QUICKSTART, QUICKSTART, "--tasks", "nosuchtask"], "task"),  # checked by the eval's parser
    ([QUICKSTART, QUICKSTART, "trainer.epohcs=1"], "did you mean 'epochs'"),
])
def test_bad_input_is_one_line_with_status_2(args: list[str], expected: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*args, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "s" / "A").exists()  # nothing ran


# ---- a real tiny study ----------------------------------------------------------------------


def test_tiny_study_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the training and evaluation subprocesses
    out = tmp_path / "study"
    args = [QUICKSTART, QUICKSTART, "--seeds", "1", "--out", str(out),
            "--b", "priors.within.weight=1.0", "--eval", "pictures=false",
            "--eval", "linear_steps=20", *tiny_quickstart(extra=["trainer.max_steps=2"])]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "seed 0 arm B: trained in" in printed and str(out / "study.md") in printed
    for arm in ("A", "B"):
        assert (out / arm / "seed_0" / "eval.json").is_file()
        assert "$ " in (out / arm / "seed_0.log").read_text()
    saved = json.loads((out / "study.json").read_text())
    assert saved["metrics"] == ["classification/knn_top1", "classification/linear_top1"]
    assert [r["skipped"] for r in saved["runs"]] == [False, False]
    record = json.loads((out / "B" / "seed_0.record.json").read_text())
    assert record["eval"] == ["progress=false", "pictures=false", "linear_steps=20"]  # no task
    assert record["overrides"][-1] == "priors.within.weight=1.0"
    text = (out / "study.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| classification/")]
    assert len(rows) == 2 and all("no verdict: 1 seed, at least 3 are needed" in r for r in rows)
    assert "`priors.within.weight=1.0`" in text and "## Runs" in text
    assert (out / "study.png").read_bytes().startswith(PNG_MAGIC)
    assert main(args) == 0  # the same command again: both runs are done
    printed = capsys.readouterr().out
    assert "seed 0 arm A: done, skipped" in printed and "seed 0 arm B: done, skipped" in printed
    # another recipe for B in the same folder is refused before anything runs
    assert main([*args, "--b", "priors.within.weight=0.5"]) == 2
    err = capsys.readouterr().err
    assert "B/seed_0 holds a run of another recipe (priors.within.weight: 1.0 -> 0.5)" in err


def test_an_edited_recipe_file_makes_a_finished_run_stale(
        tmp_path: Path, fake_calls: list[list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "arm.yaml"
    recipe.write_text(f"base: {QUICKSTART}\ntrainer: {{max_steps: 3}}\n")
    out = tmp_path / "study"
    out.mkdir()
    (out / "fail").write_text("")
    args = [str(recipe), str(recipe), "--seeds", "1", "--out", str(out), "--names", "base,levy"]
    assert main(args) == 0
    assert main(args) == 0  # unchanged: both runs are done
    assert capsys.readouterr().out.count("done, skipped") == 2
    fake_calls.clear()
    recipe.write_text(f"base: {QUICKSTART}\ntrainer: {{max_steps: 4}}\n")  # a resumable key
    assert main(args) == 0
    assert "done, skipped" not in capsys.readouterr().out
    assert [c[0] for c in fake_calls].count("levyjepa.run") == 2  # both resumed to 4 steps


def test_a_study_of_three_arms_compares_the_pairs_asked_for(
        tmp_path: Path, fake_calls: list[list[str]]) -> None:
    """Three recipes: every arm against the first by default; ``--compare`` picks the pairs;
    the report has a table of arms and one of differences, and each difference is paired."""
    out = tmp_path / "study"
    out.mkdir()
    (out / "fail").write_text("")
    args = [QUICKSTART, QUICKSTART, QUICKSTART, "--out", str(out), "--names",
            "base,levy,other_levy", "--b", "priors.within.weight=1.0"]
    assert main(args) == 0
    saved = json.loads((out / "study.json").read_text())
    assert saved["compare"] == [["levy", "base"], ["other_levy", "base"]]
    assert len(saved["runs"]) == 9
    miou = saved["results"]["segmentation/miou"]
    assert [(c["b"], c["a"]) for c in miou["comparisons"]] == [("levy", "base"),
                                                              ("other_levy", "base")]
    assert miou["comparisons"][1]["values"] == pytest.approx([0.05, 0.054, 0.066])
    assert miou["difference"]["values"] == miou["comparisons"][0]["values"]
    assert main([*args, "--compare", "other_levy:levy"]) == 0  # every run done: report only
    saved = json.loads((out / "study.json").read_text())
    assert all(r["skipped"] for r in saved["runs"])
    entry = saved["results"]["segmentation/miou"]["comparisons"]
    assert len(entry) == 1 and entry[0]["values"] == pytest.approx([0.0, 0.0, 0.0])
    assert entry[0]["verdict"].startswith("no detectable difference")
    assert main([*args, "--compare", "levy:base", "--compare", "other_levy:levy"]) == 0
    text = (out / "study.md").read_text()
    assert text.startswith("# Study: base (quickstart), levy (quickstart), other_levy")
    assert "| metric | levy - base [95% CI]: verdict | other_levy - levy [95% CI]: verdict |" \
        in text
    assert "- other_levy - levy: no detectable difference" in text
    assert (out / "study.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(("extra", "expected"), [
    (["--compare", "levy"], "--compare 'levy': give X:Y, two different arms of base, levy, c"),
    (["--compare", "levy:nobody"], "--compare 'levy:nobody'"),
    (["--names", "base,levy"], "--names 'base,levy': give 3 different names"),
])
def test_bad_comparisons_and_names_of_three_arms(extra: list[str], expected: str,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    names = [] if "--names" in extra else ["--names", "base,levy,c"]
    assert main([QUICKSTART, QUICKSTART, QUICKSTART, *names, *extra,
                 "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_one_recipe_is_not_a_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([QUICKSTART, "trainer.max_steps=2", "--out", str(tmp_path / "s")]) == 2
    assert "a study needs at least two recipe files" in capsys.readouterr().err
