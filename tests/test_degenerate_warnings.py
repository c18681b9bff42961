"""Degenerate settings warn in one line (issue 23, item 8): a token grid too coarse for label
propagation, a study below 3 seeds, an online probe read after a short run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import levyjepa.study as study_module
from levyjepa.eval.propagation import (
    evaluate_propagation,
    object_reach,
    propagate_masks,
    propagation_warning,
)
from levyjepa.studies.stats import paired_difference, t_interval, verdict
from levyjepa.studies.tables import seed_warning, study_markdown, summarize
from levyjepa.training.probe_note import print_probe_note, probe_note, probe_trouble

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")
COARSE = ("propagation: a 2 x 2 token grid (patch 4 px) is too coarse for the objects: 1 of 1 "
          "objects in frame 0 (median 0.25 tokens, smallest 0.25) outweigh the background in no "
          "token, so no features can propagate them and their J&F, the same for every source, "
          "only counts the frames where they are out of sight; use a larger image size or a "
          "smaller patch")


# ---- (a) label propagation on a coarse token grid -------------------------------------------


def _clip(side: int, frames: int = 4) -> torch.Tensor:
    """An 8 x 8 clip whose object 1 is a ``side`` x ``side`` square moving right by a pixel."""
    masks = torch.zeros(frames, 8, 8, dtype=torch.long)
    for t in range(frames):
        masks[t, 1:1 + side, 1 + t:1 + t + side] = 1
    return masks


def test_object_reach_compares_each_token_with_the_background() -> None:
    mask = torch.zeros(8, 8, dtype=torch.long)
    mask[0:2, 0:2] = 1   # 4 of the 16 pixels of token (0, 0): the background outweighs it
    mask[4:7, 4:7] = 2   # 9 of 16 in token (1, 1): the object wins there
    mask[2:4, 4:6] = 3   # 2 + 2 pixels, split over tokens (0, 1) and (1, 1)
    assert object_reach(mask, 4) == [(0.25, False), (0.5625, True), (0.25, False)]
    assert object_reach(torch.ones(8, 8, dtype=torch.long), 4) == [(4.0, True)]  # no background


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_unreachable_object_is_never_predicted_whatever_the_features(seed: int) -> None:
    masks = _clip(2)
    assert object_reach(masks[0], 4) == [(0.25, False)]
    feats = torch.randn(4, 2, 2, 8, generator=torch.Generator().manual_seed(seed))
    assert not (propagate_masks(feats, masks[0], patch=4)[1:] == 1).any()
    res = evaluate_propagation([feats], [masks], patch=4)
    assert res["background_only_clips"] == 1 and res["j_and_f"] == 0.0


def test_the_coarse_grid_warning_and_none_for_objects_the_grid_holds() -> None:
    small = [_clip(2)[0]]
    assert propagation_warning(small, patch=4, grid=(2, 2), background_only={"trained": 1},
                               clips=1) == COARSE
    assert propagation_warning([_clip(5)[0]], patch=4, grid=(2, 2), background_only={"a": 0},
                               clips=1) is None
    # the grid holds the objects, yet a source called everything background in every clip
    text = propagation_warning([_clip(5)[0]], patch=4, grid=(2, 2),
                               background_only={"trained": 2, "pixels": 1}, clips=2)
    assert text == ("propagation: trained predicted background everywhere after frame 0 in all "
                    "2 clips: their J&F only counts the frames where the objects are out of "
                    "sight")


def test_video_tasks_print_and_record_the_warning_only_when_degenerate(capsys) -> None:
    from levyjepa.core.registry import ENCODERS
    from levyjepa.eval.video_tasks import evaluation_clips, run_video_tasks

    def scores(patch: int) -> dict[str, Any]:
        torch.manual_seed(0)
        encoder = ENCODERS.build({"name": "video_vit", "arch": "vit_small", "img_size": 32,
                                  "num_frames": 4, "patch_size": patch, "tubelet_size": 1,
                                  "embed_dim": 16, "depth": 1, "num_heads": 2, "emb_dim": 8,
                                  "pool_heads": 2, "proj_hidden": 8, "proj_dim": 4},
                                 where="encoder", with_tokens_proj=True)
        clips = evaluation_clips({}, size=32, frames=4, count=2)
        return run_video_tasks({"trained": encoder}, clips, tasks=("propagation",), size=32)

    coarse = scores(8)  # a 4 x 4 grid on 32 px frames
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == f"levyjepa: warning: {coarse['warnings'][0]}"
    assert err[0].startswith("levyjepa: warning: propagation: a 4 x 4 token grid (patch 8 px) "
                             "is too coarse for the objects: 5 of 7 objects in frame 0")
    assert "use a larger image size or a smaller patch" in err[0]
    fine = scores(4)  # 8 x 8: most objects cover several tokens
    assert "warnings" not in fine and capsys.readouterr().err == ""
    assert fine["propagation"]["trained"]["j_and_f"] > 0.3


# ---- (b) a study below 3 seeds -----------------------------------------------------------------


def test_no_verdict_below_three_seeds() -> None:
    for n in (1, 2):
        _, diff = paired_difference([0.5, 0.6][:n], [0.6, 0.71][:n])
        seeds = "1 seed" if n == 1 else "2 seeds"
        assert verdict(diff) == f"no verdict: {seeds}, at least 3 are needed"
    _, three = paired_difference([0.5, 0.6, 0.7], [0.55, 0.66, 0.74])
    assert verdict(three) == "B higher by 0.05 (95% CI [0.02516, 0.07484])"
    equal = t_interval([0.341, 0.341])  # sd 0: a zero-width "interval"
    assert equal.low == equal.high == 0.341


def _study(values: dict[str, list[float]]) -> dict[str, Any]:
    seeds = list(range(len(values["A"])))
    study = {"command": "python -m levyjepa.study a.yaml b.yaml", "out": "s", "seeds": seeds,
             "arms": [{"name": a, "label": a.lower(), "recipe": f"{a}.yaml", "overrides": []}
                      for a in values],
             "overrides": [], "eval": ["progress=false"], "compare": [["B", "A"]],
             "runs": [{"arm": arm, "seed": s, "run_dir": f"s/{arm}/seed_{s}", "log": "x.log",
                       "train_s": 1.0, "eval_s": 1.0, "skipped": False,
                       "metrics": {"propagation/j_and_f": 0.104, "classification/knn_top1": v},
                       "baselines": {}} for s in seeds for arm, v in
                      ((a, values[a][s]) for a in values)]}
    study.update(summarize(study))
    return study


def test_two_seeds_report_no_verdict_and_no_zero_width_interval(tmp_path: Path) -> None:
    study = _study({"A": [0.341, 0.341], "B": [0.35, 0.37]})
    text = study_markdown(study, tmp_path / "study.md")
    assert "[0.104, 0.104]" not in text and "[0.341, 0.341]" not in text
    assert ("| propagation/j_and_f | 0.104 (n=2, all equal: no interval) | 0.104 (n=2, all "
            "equal: no interval) | 0 (n=2, all equal: no interval) | no verdict: 2 seeds, at "
            "least 3 are needed |") in text
    assert "| classification/knn_top1 | 0.341 (n=2, all equal: no interval) | 0.36 [" in text
    warning = ("2 seeds per arm: no verdicts, at least 3 seeds are needed (--seeds 3); with 2 "
               "seeds a 95% interval is 12.7 standard errors wide; 2 metric(s) gave one value on "
               "every seed (classification/knn_top1, propagation/j_and_f): no spread, no "
               "interval")
    assert seed_warning(study) == warning and f"Warning: {warning}." in text
    assert seed_warning(_study({"A": [0.3], "B": [0.4]})) == (
        "1 seed per arm: no verdicts, at least 3 seeds are needed (--seeds 3); no intervals "
        "either")
    three = _study({"A": [0.3, 0.32, 0.35], "B": [0.33, 0.36, 0.37]})
    assert seed_warning(three) is None
    text = study_markdown(three, tmp_path / "study3.md")
    assert "Warning" not in text and "no verdict" not in text


def test_the_study_command_ends_with_the_warning_below_three_seeds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def fake_call(args: list[str], log: Path, *, what: str, run_dir: Path) -> float:
        if args[0] == "levyjepa.eval":  # the same value on every seed, as on a coarse grid
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "eval.json").write_text(json.dumps({"propagation/j_and_f": 0.104}))
        return 0.1

    monkeypatch.setattr(study_module, "_call", fake_call)
    monkeypatch.setattr("levyjepa.eval.parse_overrides", lambda items: (None, []))
    for seeds in ("2", "3"):
        out = tmp_path / f"seeds_{seeds}"
        assert study_module.main([QUICKSTART, QUICKSTART, "--seeds", seeds, "--out",
                                  str(out)]) == 0
        err = capsys.readouterr().err.strip().splitlines()
        if seeds == "2":
            assert err == ["levyjepa: warning: 2 seeds per arm: no verdicts, at least 3 seeds "
                           "are needed (--seeds 3); with 2 seeds a 95% interval is 12.7 "
                           "standard errors wide; 1 metric(s) gave one value on every seed "
                           "(propagation/j_and_f): no spread, no interval"]
        else:
            assert err == []
        saved = json.loads((out / "study.json").read_text())
        assert saved["results"]["propagation/j_and_f"]["verdict"] == (
            "no verdict: 2 seeds, at least 3 are needed" if seeds == "2"
            else "no detectable difference (95% CI [0, 0])")


# ---- (c) the online probe after a short run ----------------------------------------------------


def test_probe_note_below_chance_short_run_and_none() -> None:
    assert probe_note(0.017, classes=10, outputs=100, steps=20, steps_per_epoch=98) == (
        "online probe test/acc 0.017 is below chance (0.100 for 10 classes; the probe has 100 "
        "outputs) after 20 steps (0.2 epoch): the online probe trains alongside the encoder and "
        "needs more steps")
    assert probe_note(0.05, classes=10, outputs=10, steps=500, steps_per_epoch=98) == (
        "online probe test/acc 0.050 is below chance (0.100 for 10 classes) after 500 steps: "
        "the online probe trains alongside the encoder and needs more steps")
    assert probe_note(0.4, classes=10, outputs=10, steps=20, steps_per_epoch=98) == (
        "online probe test/acc 0.400 comes after 20 steps (0.2 epoch), less than one epoch "
        "(chance 0.100 for 10 classes): the online probe trains alongside the encoder and needs "
        "more steps")
    assert probe_note(0.4, classes=10, outputs=100, steps=98, steps_per_epoch=98) is None
    assert probe_note(None, classes=10, outputs=10, steps=1, steps_per_epoch=98) is None
    assert probe_note(float("nan"), classes=10, outputs=10, steps=1, steps_per_epoch=98) is None
    assert probe_trouble(0.0, classes=10, steps=49, steps_per_epoch=98) == (
        "below chance after 0.5 epoch")


def _fake_run(tmp_path: Path, *, first_look: bool) -> SimpleNamespace:
    probe = SimpleNamespace(net=[None, torch.nn.Linear(4, 100)])
    return SimpleNamespace(pretrainer=SimpleNamespace(probe=probe), run_dir=tmp_path / "run",
                           cfg=SimpleNamespace(log=SimpleNamespace(first_look=first_look)),
                           accelerator=SimpleNamespace(is_main_process=True),
                           splits=SimpleNamespace(num_classes=10), steps_per_epoch=98)


def test_finish_run_prints_the_note_once(tmp_path: Path, capsys) -> None:
    print_probe_note(_fake_run(tmp_path, first_look=False), acc=0.017, step=20)
    assert capsys.readouterr().err.splitlines() == [
        "levyjepa: note: online probe test/acc 0.017 is below chance (0.100 for 10 classes; the "
        "probe has 100 outputs) after 20 steps (0.2 epoch): the online probe trains alongside "
        "the encoder and needs more steps; trust the offline evaluation (python -m "
        f"levyjepa.eval {tmp_path / 'run'})"]
    print_probe_note(_fake_run(tmp_path, first_look=False), acc=0.6, step=196)
    print_probe_note(_fake_run(tmp_path, first_look=True), acc=0.017, step=20)  # first look
    assert capsys.readouterr().err == ""


def test_first_look_adds_the_note_beside_the_offline_probes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from levyjepa.eval.first_look import first_look

    def fake_eval(run_dir: Path, settings: Any) -> dict[str, Any]:
        return {"classes": 10, "linear": {"top1": 0.3}, "knn": {"k": 20, "top1": 0.25}}

    monkeypatch.setattr("levyjepa.eval.evaluate_run", fake_eval)
    for acc, steps, note in ((0.017, 20, True), (0.5, 196, False)):
        (tmp_path / "summary.json").write_text(json.dumps(
            {"steps": steps, "epochs": steps / 98, "final": {"test/acc": acc}}))
        (tmp_path / "metrics.jsonl").write_text("")
        lines = first_look(tmp_path, prior=None, grid=None, channels=0, say=lambda _: None)
        expected = ("    note: below chance after 0.2 epoch: the online probe trains alongside "
                    "the encoder and needs more steps; trust the offline probes below")
        assert (expected in lines.splitlines()) is note
        assert ("note:" in lines) is note
