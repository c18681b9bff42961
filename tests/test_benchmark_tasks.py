"""The field's benchmarks as tasks of ``python -m levyjepa.eval``, end to end on tiny trees in
their exact formats (written by the benchmark tests' own writers): from a run directory, an
exported encoder and a recipe with ``weights=``; results in ``eval.json`` under ``task/metric``,
outputs under ``eval/<task>/``; bad settings and a missing ``data_root`` in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from levyjepa.config.recipe import load_recipe
from levyjepa.eval import main
from levyjepa.export import export
from levyjepa.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["pictures=false", "progress=false", "device=cpu"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_train import tiny

    run = tmp_path_factory.mktemp("bench") / "run"
    train(load_recipe(ROOT / "recipes" / "quickstart.yaml", tiny(run, "trainer.max_steps=1")))
    return run


def _latest(path: Path) -> dict:
    return json.loads(path.read_text())


def test_tapvid_from_a_run_an_export_and_a_recipe_with_weights(
        tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_tapvid import write_davis

    pickle = tmp_path / "tapvid_davis.pkl"
    write_davis(pickle, names=("bear",))
    args = ["task=tapvid", f"data_root={tmp_path}", *QUIET]
    assert main([str(tiny_run), *args]) == 0
    assert "tapvid/average_jaccard" in capsys.readouterr().out
    view = _latest(tiny_run / "eval.json")
    run_scores = {k: v for k, v in view.items() if k.startswith("tapvid/")}
    assert 0.0 <= run_scores["tapvid/average_jaccard"] <= 1.0
    assert {"tapvid/occlusion_accuracy", "tapvid/jaccard_16", "tapvid/pts_within_1"} <= set(
        run_scores)
    assert (tiny_run / "eval" / "tapvid" / "tapvid_metrics.json").is_file()
    entry = [e for e in view["evaluations"] if e["task"] == "tapvid"][-1]
    assert entry["settings"]["query_mode"] == "first" and entry["settings"]["layers"] == 1

    folder = export(tiny_run, tmp_path / "export")  # the same encoder, scored the same
    assert main([str(folder), *args]) == 0
    exported = _latest(folder / "eval.json")
    checkpoint = sorted((tiny_run / "checkpoints").iterdir())[-1] / "model.safetensors"
    assert main([str(tiny_run / "config.yaml"), f"weights={checkpoint}", *args,
                 f"out={tmp_path / 'recipe_eval.json'}"]) == 0
    from_recipe = _latest(tmp_path / "recipe_eval.json")
    for other in (exported, from_recipe):
        assert {k: v for k, v in other.items() if k.startswith("tapvid/")} == run_scores


def test_video_classification_on_clip_lists(tiny_run: Path, video_tree: Path,
                                            tmp_path: Path) -> None:
    from test_clip_lists import write_lists

    write_lists(video_tree, tmp_path / "lists")
    assert main([str(tiny_run), "task=video_classification", f"data_root={tmp_path / 'lists'}",
                 "clip_frames=4", "segments=2", "views=1", "probe_epochs=2", *QUIET]) == 0
    view = _latest(tiny_run / "eval.json")
    assert 0.0 <= view["video_classification/top1"] <= 1.0
    assert "video_classification/linear_mean_top1" in view
    assert (tiny_run / "eval" / "video_classification"
            / "video_classification.json").is_file()


def test_davis_writes_the_layout_and_the_official_tables(tiny_run: Path, tmp_path: Path) -> None:
    from test_davis import write_tree

    root = write_tree(tmp_path / "DAVIS")
    assert main([str(tiny_run), "task=davis", f"data_root={root}", "short_side=16",
                 "size_multiple=4", *QUIET]) == 0
    view = _latest(tiny_run / "eval.json")
    assert 0.0 <= view["davis/j_and_f"] <= 1.0
    assert {"davis/j_mean", "davis/f_mean"} <= set(view)
    out = tiny_run / "eval" / "davis"
    assert list(out.rglob("global_results-val.csv")) and list(out.rglob("*/00000.png"))


@pytest.mark.parametrize("dataset", ["voc2012", "ade20k"])
def test_semantic_segmentation_in_its_layouts(tiny_run: Path, tmp_path: Path,
                                              dataset: str) -> None:
    from test_semantic_segmentation import write_ade, write_voc

    root = (write_voc if dataset == "voc2012" else write_ade)(tmp_path / dataset)
    assert main([str(tiny_run), f"task={dataset}", f"data_root={root}", "iterations=3",
                 "crop=16", "stride=8", "base_size=null", *QUIET]) == 0
    view = _latest(tiny_run / "eval.json")
    assert 0.0 <= view[f"{dataset}/miou"] <= 1.0 and f"{dataset}/pixel_acc" in view
    assert isinstance(view[dataset]["per_class_iou"], dict)
    assert list((tiny_run / "eval" / dataset).glob("semantic_segmentation_*.json"))


@pytest.mark.parametrize(("args", "message"), [
    (["task=davis"], "task=davis needs data_root=PATH: JPEGImages/480p/<seq>/"),
    (["task=tapvid", "data_root=/nonexistent/tapvid"], "data_root=/nonexistent/tapvid: not "
                                                        "found; task=tapvid expects a "
                                                        "tapvid_davis.pkl"),
    (["task=davis", "preset=dinov4"], "preset='dinov4' is out of range; valid: dino, dinov3, "
                                      "crw"),
    (["task=tapvid", "query_mode=all"], "query_mode='all' is out of range; valid: first, "
                                        "strided"),
    (["task=ade20k", "layers=0"], "layers=0 is out of range"),
])
def test_bad_benchmark_settings_are_one_line(tiny_run: Path, args: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tiny_run), *args, *QUIET]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_an_export_takes_the_benchmark_tasks_only(tiny_run: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = export(tiny_run, tmp_path / "export")
    assert main([str(folder), "task=classification", *QUIET]) == 2
    assert "task=classification: needs a run directory" in capsys.readouterr().err


@pytest.mark.slow  # two arms trained and evaluated in subprocesses: about 40 s
def test_a_study_runs_a_benchmark_task(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m levyjepa.study --tasks tapvid --eval data_root=...``: the benchmark's metrics
    are the study's metrics, per arm and paired."""
    from test_tapvid import write_davis
    from test_train import tiny

    from levyjepa.study import main as study_main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    write_davis(tmp_path / "tapvid_davis.pkl", names=("bear",))
    out = tmp_path / "study"
    quickstart = str(ROOT / "recipes" / "quickstart.yaml")
    train_args = [a for a in tiny(out, "trainer.max_steps=1") if not a.startswith("out_dir=")]
    args = [quickstart, quickstart, "--seeds", "1", "--out", str(out), "--tasks", "tapvid",
            "--names", "a,b", "--b", "priors.within.weight=1",
            f"--eval=data_root={tmp_path}", "--eval=pictures=false", *train_args]
    assert study_main(args) == 0
    saved = json.loads((out / "study.json").read_text())
    assert "tapvid/average_jaccard" in saved["metrics"]
    assert "tapvid/average_jaccard" in (out / "study.md").read_text()
