"""The smallest detectable difference of a study and the seeds to detect a stated one.

The power of the study's paired t-test (:mod:`levyjepa.studies.power`) against simulation with
the study's own verdict code, against textbook sample sizes, and as the study command reports
it (``study.md``, ``study.json``, ``--target-difference``), with fake training and evaluation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

import levyjepa.study as study_module
from levyjepa.studies.power import (
    power,
    seeds_needed,
    smallest_detectable_difference,
    undefined_reason,
)
from levyjepa.studies.stats import paired_difference, verdict
from levyjepa.studies.tables import study_markdown, summarize
from levyjepa.study import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")
Z_975, Z_80 = 1.959963984540054, 0.8416212335729143  # normal quantiles, from a printed table


# ---- calibration by simulation -------------------------------------------------------------


def _detection_rate(delta: float, sd: float, n: int, studies: int,
                    rng: np.random.Generator) -> float:
    """The share of simulated paired studies whose verdict is a difference, as the study
    decides it: ``B - A`` on each seed, the 95% t interval of the mean, the verdict."""
    seed_effect = rng.normal(0.0, 0.05, size=(studies, n))  # shared by both arms: cancels
    a = 0.4 + seed_effect
    b = a + rng.normal(delta, sd, size=(studies, n))
    verdicts = [verdict(paired_difference(list(x), list(y))[1]) for x, y in zip(a, b)]
    assert not any(v.startswith("no verdict") for v in verdicts)
    return sum(not v.startswith("no detectable difference") for v in verdicts) / studies


@pytest.mark.parametrize("n", [3, 5])
def test_the_smallest_detectable_difference_is_detected_80_percent_of_the_time(n: int) -> None:
    """At the smallest detectable difference of the true sd the verdict finds a difference in
    80% of studies (binomial sd of the rate over 2,000 studies: 0.9%, so 75-85% is 5.6 sd);
    with no true difference in 5% of them (sd 0.49%, so 3.5-6.5% is 3 sd)."""
    rng = np.random.default_rng(20240 + n)
    sd, studies = 0.02, 2000
    delta = smallest_detectable_difference(sd, n)
    assert power(delta, sd, n) == pytest.approx(0.8, abs=1e-9)
    assert 0.75 <= _detection_rate(delta, sd, n, studies, rng) <= 0.85
    assert 0.035 <= _detection_rate(0.0, sd, n, studies, rng) <= 0.065


# ---- the formulas ---------------------------------------------------------------------------


def test_worked_example_and_large_sample_limit() -> None:
    # sd 0.02, 3 seeds: the noncentrality at 80% power is 5.6535 (t(0.975, 2) = 4.30 plus the
    # spread of an sd estimated on 2 degrees of freedom), so 5.6535 * 0.02 / sqrt(3) = 0.06528
    assert smallest_detectable_difference(0.02, 3) == pytest.approx(0.065281, abs=1e-6)
    assert smallest_detectable_difference(0.02, 5) == pytest.approx(0.033640, abs=1e-6)
    # many seeds: t tends to the normal, delta -> (z(0.975) + z(0.8)) * sd / sqrt(n)
    assert smallest_detectable_difference(1.0, 2000) * math.sqrt(2000) == pytest.approx(
        Z_975 + Z_80, rel=1e-3)
    assert smallest_detectable_difference(0.04, 3) == pytest.approx(
        2 * smallest_detectable_difference(0.02, 3), rel=1e-9)  # linear in sd
    assert power(0.0, 0.02, 3) == pytest.approx(0.05, abs=1e-12)  # no difference: alpha
    assert power(-0.03, 0.02, 4) == power(0.03, 0.02, 4)  # two-sided
    # 2 seeds: t(0.975, 1) = 12.7 and an sd on 1 degree of freedom, 16.3 standard errors
    assert smallest_detectable_difference(1.0, 2) * math.sqrt(2) == pytest.approx(16.33, abs=0.01)


@pytest.mark.parametrize(("effect", "textbook"), [(1.0, 10), (0.5, 34), (0.2, 199)])
def test_seeds_needed_matches_textbook_sample_sizes(effect: float, textbook: int) -> None:
    """Paired t-test, two-sided 5%, 80% power, effect size d = delta / sd: 10, 34 and 199 pairs
    (G*Power's exact values). Guenther's (1981) normal approximation ((z(0.975) + z(0.8)) / d)^2
    + z(0.975)^2 / 2, 9.77, 33.3 and 198.1, is within one seed: its error is below one pair."""
    sd = 0.02
    n = seeds_needed(effect * sd, sd)
    assert n == textbook
    assert power(effect * sd, sd, n) >= 0.8 > power(effect * sd, sd, n - 1)
    approximation = ((Z_975 + Z_80) / effect) ** 2 + Z_975 ** 2 / 2
    assert abs(n - approximation) < 1.0


@pytest.mark.parametrize(("delta", "sd"), [(0.05, 0.02), (0.01, 0.02), (0.031, 0.017),
                                           (0.2, 0.01)])
def test_seeds_needed_is_the_fewest_with_enough_power(delta: float, sd: float) -> None:
    n = seeds_needed(delta, sd)
    assert isinstance(n, int) and n >= 2 and power(delta, sd, n) >= 0.8
    assert n == 2 or power(delta, sd, n - 1) < 0.8
    # and the smallest detectable difference at those seeds is at most delta
    assert smallest_detectable_difference(sd, n) <= delta * (1 + 1e-9)


def test_undefined_and_out_of_range() -> None:
    assert undefined_reason(0.02, 1) == "fewer than 2 seeds"
    assert undefined_reason(0.0, 3) == "the paired differences have no spread"
    assert undefined_reason(math.nan, 3) == "the paired differences are not finite"
    assert undefined_reason(0.02, 2) is None
    for sd, n in ((0.02, 1), (0.0, 3), (math.nan, 3), (math.inf, 3)):
        assert math.isnan(smallest_detectable_difference(sd, n))
        assert math.isnan(power(0.01, sd, n))
    assert math.isnan(seeds_needed(0.01, 0.0)) and math.isnan(seeds_needed(0.01, math.nan))
    assert seeds_needed(1e-4, 0.02) == math.inf  # more than 1000 seeds
    assert seeds_needed(1e-3, 0.02, max_n=5000) == seeds_needed(1e-3, 0.02, max_n=4000) > 1000
    for bad in (0.0, -0.01, math.nan):
        with pytest.raises(ValueError, match="delta"):
            seeds_needed(bad, 0.02)
    with pytest.raises(ValueError, match="power"):
        smallest_detectable_difference(0.02, 3, power=0.01)
    with pytest.raises(ValueError, match="alpha"):
        power(0.01, 0.02, 3, alpha=1.0)


# ---- the report -----------------------------------------------------------------------------


def _study(b_minus_a: list[float], target: float | None = None) -> dict[str, Any]:
    """A two-arm study over ``len(b_minus_a)`` seeds, as :mod:`levyjepa.study` builds it."""
    seeds = list(range(len(b_minus_a)))
    a = [0.40 + 0.03 * s for s in seeds]
    study: dict[str, Any] = {
        "command": "python -m levyjepa.study a.yaml b.yaml", "out": "s", "seeds": seeds,
        "arms": [{"name": x, "label": x.lower(), "recipe": f"{x}.yaml", "overrides": []}
                 for x in ("A", "B")],
        "overrides": [], "eval": ["progress=false"], "compare": [["B", "A"]],
        "target_difference": target,
        "runs": [{"arm": arm, "seed": s, "run_dir": f"s/{arm}/seed_{s}", "log": "x.log",
                  "train_s": 1.0, "eval_s": 1.0, "skipped": False,
                  "metrics": {"segmentation/miou": v, "tracking/delta_avg": 0.1},
                  "baselines": {}}
                 for s in seeds for arm, v in (("A", a[s]), ("B", a[s] + b_minus_a[s]))]}
    study.update(summarize(study))
    return study


def test_the_report_gives_what_each_verdict_could_detect(tmp_path: Path) -> None:
    # differences 0.01, 0.03, 0.02: mean 0.02, sd 0.01; interval 0.02 -+ 4.3027 * 0.01 / sqrt(3)
    # = [-0.004841, 0.04484] contains 0; detectable: 5.6535 * 0.01 / sqrt(3) = 0.03264
    study = _study([0.01, 0.03, 0.02], target=0.02)
    text = study_markdown(study, tmp_path / "study.md")
    assert ("Verdict: no detectable difference (95% CI [-0.004841, 0.04484]; this study detects "
            "differences of 0.03264 or more).") in text
    assert ("| verdict | smallest detectable difference | seeds to detect 0.02 |") in text
    assert "| no detectable difference | 0.03264 | 5 |" in text  # the summary row
    assert "| smallest detectable difference |  |  | 0.03264 |" in text  # the metric's table
    # a metric equal on every seed: no spread, said in words
    assert ("Verdict: no detectable difference (95% CI [0, 0]; smallest detectable difference "
            "undefined: the paired differences have no spread).") in text
    miou = study["results"]["segmentation/miou"]
    assert miou["comparisons"][0]["smallest_detectable_difference"] == pytest.approx(
        smallest_detectable_difference(0.01, 3), rel=1e-9)
    assert miou["comparisons"][0]["seeds_to_detect"] == 5
    assert miou["verdict"] == "no detectable difference (95% CI [-0.004841, 0.04484])"
    # power at 5 seeds against 0.02 with sd 0.01 (d = 2): 0.87; at 4: 0.71
    assert power(0.02, 0.01, 5) > 0.8 > power(0.02, 0.01, 4)
    flat = study["results"]["tracking/delta_avg"]["difference"]
    assert flat["smallest_detectable_difference"] is None and flat["seeds_to_detect"] is None
    assert flat["power_undefined"] == "the paired differences have no spread"
    assert study["power_analysis"] == {"power": 0.8, "alpha": 0.05, "target_difference": 0.02,
                                       "max_seeds": 1000}


def test_below_three_seeds_the_numbers_stay_but_the_verdict_does_not_claim(
        tmp_path: Path) -> None:
    """With 2 seeds there is no verdict, so no sentence claims what "this study detects"; the
    column still gives the 2-seed t-test's detectable difference (from an sd on 1 degree of
    freedom, 16.3 standard errors) and the seeds a stated difference needs, a pilot's use."""
    study = _study([0.01, 0.03], target=0.5)
    text = study_markdown(study, tmp_path / "study.md")
    assert "Verdict: no verdict: 2 seeds, at least 3 are needed." in text
    assert "this study detects" not in text
    entry = study["results"]["segmentation/miou"]["difference"]
    sd = 0.02 / math.sqrt(2)
    assert entry["smallest_detectable_difference"] == pytest.approx(
        smallest_detectable_difference(sd, 2))
    assert entry["seeds_to_detect"] == 2 and entry["seeds_to_detect_text"] == (
        "2 (a verdict needs 3)")
    one = _study([0.01], target=0.5)["results"]["segmentation/miou"]["difference"]
    assert one["power_undefined"] == "fewer than 2 seeds"
    assert one["seeds_to_detect_text"] == "undefined: fewer than 2 seeds"


# ---- the command ----------------------------------------------------------------------------


@pytest.fixture
def fake_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """No training: each evaluation writes an eval.json whose B - A is 0.01, 0.03, 0.02."""
    def fake_call(args: list[str], log: Path, *, what: str, run_dir: Path) -> float:
        if args[0] == "levyjepa.eval":
            seed, arm = int(run_dir.name.split("_")[1]), run_dir.parent.name
            value = 0.4 + 0.03 * seed + ((0.01, 0.03, 0.02)[seed] if arm == "B" else 0.0)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "eval.json").write_text(json.dumps({"segmentation/miou": value}))
        return 0.1

    monkeypatch.setattr(study_module, "_call", fake_call)
    monkeypatch.setattr("levyjepa.eval.parse_overrides", lambda items: (None, []))


def test_the_command_writes_the_numbers(tmp_path: Path, fake_runs: None) -> None:
    out = tmp_path / "study"
    assert main([QUICKSTART, QUICKSTART, "--out", str(out), "--target-difference", "0.005"]) == 0
    saved = json.loads((out / "study.json").read_text())
    assert saved["target_difference"] == 0.005
    entry = saved["results"]["segmentation/miou"]["comparisons"][0]
    assert entry["smallest_detectable_difference"] == pytest.approx(0.032640435, rel=1e-6)
    # d = 0.5: 34 pairs (the textbook case above)
    assert entry["seeds_to_detect"] == seeds_needed(0.005, 0.01) == 34
    text = (out / "study.md").read_text()
    assert "this study detects differences of 0.03264 or more" in text
    assert "| seeds to detect 0.005 |" in text


@pytest.mark.parametrize("value", ["0", "-0.1", "abc", "nan", "inf"])
def test_a_bad_target_difference_is_one_line(value: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main([QUICKSTART, QUICKSTART, "--out", str(tmp_path / "s"),
                 f"--target-difference={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--target-difference '{value}'" in err, err
    assert not (tmp_path / "s").exists()  # nothing ran


def test_the_normal_quantiles_used_above() -> None:
    assert stats.norm.ppf(0.975) == pytest.approx(Z_975) and stats.norm.ppf(0.8) == pytest.approx(
        Z_80)
