"""Each arm's gain over its own untrained encoder (levyjepa.studies.learned): hand-computed
values, the verdict's wording, the share of a reference's gain, calibration under no gain and
the section of study.md."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pytest

from levyjepa.studies.learned import gain_verdict, learned_markdown, summarize_learned
from levyjepa.studies.power import smallest_detectable_difference
from levyjepa.studies.stats import t_interval
from levyjepa.studies.tables import summarize

T_975_2 = 4.302652729749464  # Student t 0.975 quantile, 2 degrees of freedom (tables)


def _run(arm: str, seed: int, value: float, untrained: Optional[float],
         metric: str = "segmentation/miou") -> dict[str, Any]:
    baselines = {} if untrained is None else {"untrained": {metric: untrained},
                                              "pixels": {metric: 0.1}}
    return {"arm": arm, "seed": seed, "metrics": {metric: value, "classification/knn_top1": 0.5},
            "baselines": baselines, "train_s": 1.0, "eval_s": 1.0, "skipped": False,
            "run_dir": f"runs/{arm}/seed_{seed}", "log": f"runs/{arm}/seed_{seed}.log"}


def _study(rows: list[tuple[str, int, float, Optional[float]]],
           references: tuple[str, ...] = ()) -> dict[str, Any]:
    arms = sorted({r[0] for r in rows}, key=[r[0] for r in rows].index)
    study = {"arms": [{"name": a, "label": a, "recipe": f"{a}.yaml", "overrides": []}
                      for a in arms],
             "seeds": sorted({r[1] for r in rows}), "reference_arms": list(references),
             "runs": [_run(*r) for r in rows], "command": "python -m levyjepa.study ...",
             "overrides": [], "eval": ["task=segmentation"]}
    study.update(summarize(study))
    return study


def test_gains_are_paired_by_seed_with_the_t_interval_by_hand() -> None:
    # arm A: gains 0.02, 0.03, 0.04 over untrained baselines that differ by seed
    study = _study([("A", 0, 0.27, 0.25), ("A", 1, 0.23, 0.20), ("A", 2, 0.34, 0.30),
                    ("B", 0, 0.26, 0.25), ("B", 1, 0.19, 0.20), ("B", 2, 0.31, 0.30)])
    learned = study["learned"]
    assert list(learned) == ["segmentation/miou"]  # k-NN has no untrained baseline
    a = learned["segmentation/miou"]["arms"]["A"]
    assert a["values"] == pytest.approx([0.02, 0.03, 0.04])
    half = T_975_2 * 0.01 / math.sqrt(3)  # sd of (0.02, 0.03, 0.04) is 0.01
    assert a["mean"] == pytest.approx(0.03)
    assert (a["low"], a["high"]) == pytest.approx((0.03 - half, 0.03 + half))
    assert a["verdict"].startswith("above its untrained encoder by 0.03 (95% CI [0.005")
    assert a["smallest_detectable_difference"] == pytest.approx(
        smallest_detectable_difference(0.01, 3))
    b = learned["segmentation/miou"]["arms"]["B"]
    assert b["values"] == pytest.approx([0.01, -0.01, 0.01])
    assert b["verdict"].startswith("no detectable gain over its untrained encoder (95% CI [")
    assert a["share"] == {} and b["share"] == {}


def test_below_and_too_few_seeds() -> None:
    below = t_interval([-0.05, -0.04, -0.06])
    assert gain_verdict(below).startswith("below its untrained encoder by 0.05 (95% CI [")
    assert gain_verdict(t_interval([0.1, 0.2])) == "no verdict: 2 seeds, at least 3 are needed"


def test_share_of_the_reference_gain() -> None:
    rows = [("ssl", s, 0.25 + g, 0.25) for s, g in enumerate((0.02, 0.03, 0.04))]
    rows += [("other", s, 0.25 + g, 0.25) for s, g in enumerate((0.01, 0.0, 0.02))]
    rows += [("supervised", s, 0.25 + g, 0.25) for s, g in enumerate((0.11, 0.12, 0.13))]
    arms = _study(rows, references=("supervised",))["learned"]["segmentation/miou"]["arms"]
    assert arms["ssl"]["share"]["supervised"] == pytest.approx(0.03 / 0.12)
    assert arms["other"]["share"]["supervised"] == pytest.approx(0.01 / 0.12)
    assert arms["supervised"]["share"] == {}
    # a reference that gained nothing detectable gives no share
    flat = [r for r in rows if r[0] != "supervised"]
    flat += [("supervised", s, 0.25 + g, 0.25) for s, g in enumerate((0.01, -0.01, 0.02))]
    arms = _study(flat, references=("supervised",))["learned"]["segmentation/miou"]["arms"]
    assert arms["ssl"]["share"] == {"supervised": None}


def test_markdown_section_lists_every_arm_and_is_absent_without_baselines(tmp_path) -> None:
    rows = [("A", s, 0.3 + 0.01 * s, 0.25) for s in range(3)]
    rows += [("B", s, 0.3, 0.25) for s in range(3)]
    rows += [("ref", s, 0.39 + 0.01 * s, 0.25) for s in range(3)]
    study = _study(rows, references=("ref",))
    lines = learned_markdown(study)
    assert lines[0] == "## What each arm learned"
    row_a = next(line for line in lines if line.startswith("| segmentation/miou | A |"))
    assert "+0.050, +0.060, +0.070" in row_a and "above its untrained encoder by 0.06" in row_a
    assert row_a.rstrip(" |").endswith("40%")  # 0.06 / 0.15
    assert any(line.startswith("| segmentation/miou | ref (reference) |") for line in lines)
    from levyjepa.studies.tables import study_markdown

    text = study_markdown(study, tmp_path / "study.md")
    assert text.index("## What each arm learned") < text.index("## Per metric")
    none = _study([("A", s, 0.3, None) for s in range(3)] + [("B", s, 0.3, None)
                                                             for s in range(3)])
    assert none["learned"] == {} and learned_markdown(none) == []


def test_calibration_under_no_gain_and_power_at_the_smallest_detectable_gain() -> None:
    rng = np.random.default_rng(27)
    sd, n, trials = 0.01, 3, 2000
    sdd = smallest_detectable_difference(sd, n)
    for true_gain, low, high in ((0.0, 0.035, 0.065), (sdd, 0.75, 0.85)):
        detected = 0
        for _ in range(trials):
            base = rng.normal(0.25, 0.02, n)  # the untrained encoders differ by seed
            gains = true_gain + rng.normal(0.0, sd, n)
            study = {"arms": [{"name": "A"}], "seeds": list(range(n)),
                     "metrics": ["segmentation/miou"],
                     "runs": [_run("A", s, float(base[s] + gains[s]), float(base[s]))
                              for s in range(n)]}
            verdict = summarize_learned(study)["segmentation/miou"]["arms"]["A"]["verdict"]
            detected += not verdict.startswith("no detectable")
        assert low <= detected / trials <= high, (true_gain, detected / trials)
