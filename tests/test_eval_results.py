"""``eval.json`` keeps every evaluation of a run, and an evaluation never erases earlier results:
evaluations of different tasks and settings accumulate, a failing evaluation leaves the file as
it was, and the dense pictures reach wandb and tensorboard from a fresh evaluation process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_dense_eval import IMAGE_RECIPE, SMALL_DENSE
from test_train import tiny, tiny_data

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.eval.command import main
from levyjepa.eval.results_file import latest_view, read_entries, record_entries
from levyjepa.training.loop import train

FAST_CLASSIFICATION = ["k=3", "linear_steps=5", "pictures=false", "progress=false"]
FAST_VIDEO = ["clips=1", "clip_frames=3", "pictures=false", "progress=false"]


def entry(task: str, value: float, **settings) -> dict:
    return {"task": task, "checkpoint": "checkpoints/step_00000002", "step": 2,
            "untrained": False, "recipe_overrides": [], "settings": settings,
            "result": {f"{task}/score": value, "baselines": {"pixels": {f"{task}/score": 0.1}}}}


def test_entries_accumulate_and_the_same_settings_replace_their_own(tmp_path: Path) -> None:
    path = tmp_path / "eval.json"
    record_entries(path, [entry("segmentation", 0.3, seg_iterations=20)])
    record_entries(path, [entry("tracking", 0.2, clips=1)])
    record_entries(path, [entry("segmentation", 0.4, seg_iterations=40)])  # other settings
    content = record_entries(path, [entry("tracking", 0.25, clips=1)])  # same: replaces
    got = [(e["task"], e["result"][f"{e['task']}/score"]) for e in read_entries(path)]
    assert got == [("segmentation", 0.3), ("segmentation", 0.4), ("tracking", 0.25)]
    assert content == json.loads(path.read_text())
    # the latest view: the newest entry of each task, both tasks' baselines merged
    assert content["tasks"] == ["segmentation", "tracking"]
    assert content["segmentation/score"] == 0.4 and content["tracking/score"] == 0.25
    assert content["baselines"] == {"pixels": {"segmentation/score": 0.1,
                                               "tracking/score": 0.1}}
    assert all(e["written_at"] for e in content["evaluations"])
    assert not list(tmp_path.glob(".eval.json.*"))  # atomic: no temporary file left


def test_the_latest_view_shows_one_checkpoint() -> None:
    old = {**entry("segmentation", 0.3), "checkpoint": "checkpoints/step_00000001", "step": 1}
    view = latest_view([old, entry("tracking", 0.2)])
    assert view["step"] == 2 and view["tasks"] == ["tracking"]
    assert "segmentation/score" not in view


def test_a_flat_eval_json_of_an_earlier_version_is_kept_as_entries(tmp_path: Path) -> None:
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({
        "run_dir": "r", "checkpoint": "c", "step": 5, "untrained": False,
        "tasks": ["classification", "segmentation"], "knn": {"top1": 0.5},
        "linear": {"top1": 0.6}, "classification/knn_top1": 0.5, "segmentation/miou": 0.3,
        "baselines": {"pixels": {"segmentation/miou": 0.2}}, "segmentation": {"patch": 8}}))
    entries = read_entries(path)
    assert [e["task"] for e in entries] == ["classification", "segmentation"]
    assert entries[0]["settings"] is None and entries[0]["result"]["knn"] == {"top1": 0.5}
    assert entries[1]["result"] == {"segmentation/miou": 0.3, "segmentation": {"patch": 8},
                                    "baselines": {"pixels": {"segmentation/miou": 0.2}}}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"format": 99}'])
def test_an_unreadable_results_file_is_refused_and_left_as_it_is(tmp_path: Path,
                                                                  text: str) -> None:
    path = tmp_path / "eval.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{path}: .*out=PATH"):
        record_entries(path, [entry("tracking", 0.2)])
    assert path.read_text() == text


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step run of the image study's recipe (scenes: labels and dense ground truth)."""
    out = tmp_path_factory.mktemp("eval_results") / "run"
    train(load_recipe(IMAGE_RECIPE, tiny(out, "trainer.max_steps=2",
                                         data=tiny_data(IMAGE_RECIPE, out, None))))
    return out


def test_classification_then_segmentation_then_propagation_keeps_all(run: Path) -> None:
    assert main([str(run), *FAST_CLASSIFICATION]) == 0
    assert main([str(run), "task=segmentation", *SMALL_DENSE, "pictures=false"]) == 0
    assert main([str(run), "task=propagation", *FAST_VIDEO]) == 0
    content = json.loads((run / "eval.json").read_text())
    assert [e["task"] for e in content["evaluations"]] == [
        "classification", "segmentation", "propagation"]
    assert content["tasks"] == ["classification", "segmentation", "propagation"]
    for key in ("classification/knn_top1", "segmentation/miou", "propagation/j_and_f"):
        assert 0.0 <= content[key] <= 1.0
    assert content["knn"]["k"] == 3 and content["video"]["clips"] == 1
    assert set(content["baselines"]["pixels"]) == {
        "segmentation/miou", "segmentation/pixel_acc", "propagation/j_mean",
        "propagation/f_mean", "propagation/j_and_f"}
    seg = content["evaluations"][1]
    assert seg["settings"]["seg_iterations"] == 20 and seg["settings"]["device"] == "cpu"
    assert "k" not in seg["settings"]  # classification's settings are not segmentation's
    # the same task, other settings: a new entry; the same settings again: replaced
    assert main([str(run), "k=5", *FAST_CLASSIFICATION[1:]]) == 0
    assert main([str(run), *FAST_CLASSIFICATION]) == 0
    content = json.loads((run / "eval.json").read_text())
    tasks = [(e["task"], (e["settings"] or {}).get("k")) for e in content["evaluations"]]
    assert tasks == [("segmentation", None), ("propagation", None), ("classification", 5),
                     ("classification", 3)]
    assert content["knn"]["k"] == 3 and "segmentation/miou" in content


def test_a_failing_evaluation_leaves_eval_json_intact(run: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert main([str(run), *FAST_CLASSIFICATION]) == 0
    before = (run / "eval.json").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("the dense protocol broke")

    monkeypatch.setattr("levyjepa.eval.command.dense", broken)
    with pytest.raises(RuntimeError, match="broke"):
        main([str(run), "task=segmentation", *SMALL_DENSE])
    assert (run / "eval.json").read_bytes() == before


@pytest.mark.parametrize("tracker", ["wandb", "tensorboard"])
def test_dense_pictures_reach_the_trackers_from_a_fresh_process(
        run: Path, tracker: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m levyjepa.eval`` builds no Accelerator: without an Accelerate state the
    trackers' logging raised (the state is reset here, as in a new process)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([str(run), "task=tracking", *FAST_VIDEO[:2], "progress=false",
                 f"log.trackers=[{tracker}]"]) == 0
    assert "warning" not in capsys.readouterr().err
    content = json.loads((run / "eval.json").read_text())
    assert Path(content["pictures"]["eval_tracks"]).is_file()
    if tracker == "tensorboard":
        assert list((run / "tensorboard" / "eval").glob("events.out.tfevents*"))
    else:
        runs = list((run / "wandb").glob("offline-run-*"))
        assert runs and any(p.suffix == ".wandb" for r in runs for p in r.iterdir())
