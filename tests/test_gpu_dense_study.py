"""``benchmarks/gpu_dense_study.py``: the dense study's one-GPU script runs end to end on a CPU at
a tiny size (``--dry-run``, the supervised reference arm included, about 40 s on 2 cores) and
projects its default GPU configuration under nine minutes (``--project-only``)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

from levyjepa.data.generated.scene_images import scene_params

ROOT = Path(__file__).resolve().parents[1]


def script() -> ModuleType:
    """``benchmarks/gpu_dense_study.py`` imported as a module."""
    spec = importlib.util.spec_from_file_location("gpu_dense_study",
                                                  ROOT / "benchmarks" / "gpu_dense_study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_dry_run_writes_the_study_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "study"
    assert script().main([str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("trained in") == 3 and "--parallel 3" not in printed
    study = json.loads((out / "study.json").read_text())
    assert {(r["arm"], r["seed"]) for r in study["runs"]} == {
        ("lejepa", 0), ("lejepa_levy2d", 0), ("supervised", 0)}
    for run in study["runs"]:
        assert {"segmentation/miou", "classification/linear_top1"} <= set(run["metrics"])
        assert set(run["baselines"]) == {"untrained", "pixels"}
    # the supervised ceiling: trained and evaluated, reported, never compared
    assert (out / "supervised" / "seed_0" / "eval.json").is_file()
    assert study["reference_arms"] == ["supervised"]
    report = (out / "study.md").read_text()
    assert "lejepa_levy2d - lejepa" in report and "supervised - " not in report
    assert re.search(r"- supervised: `[^`]*image_supervised_gpu10\.yaml` "
                     r"\(reference: not compared\)", report)
    with Image.open(out / "study.png") as picture:
        picture.verify()
    record = json.loads((out / "gpu_dense_study.json").read_text())
    assert record["plan"]["seeds"] == 1 and record["total_s"] > 0
    assert record["plan"]["supervised"] and "--reference supervised" in record["command"]
    assert record["command"].startswith("python -m levyjepa.study ")
    assert record["command"].endswith("--parallel 3")  # every run at once
    # the folder's scenes are the ones the segmentation probe renders for such a run
    scenes = json.loads((out / "scenes_32" / "scenes.json").read_text())
    assert scenes["params"] == json.loads(json.dumps(scene_params({"size": 32})))
    assert sum(scenes["train_per_class"]) == 16


def test_project_only_prints_a_total_under_nine_minutes(capsys: pytest.CaptureFixture) -> None:
    assert script().main(["--project-only"]) == 0
    printed = capsys.readouterr().out
    assert "8000 + 1000 scenes of 128 px, 64 scenes x 2 views a step" in printed
    assert "2000 steps per run, 3 seeds x 2 arms = 6 runs, 6 at once" in printed
    for term in ("scenes written once", "run start-up", "training (GPU, shared)",
                 "evaluation forwards (GPU, fp32)", "segmentation probes", "report"):
        assert f"| {term} |" in printed
    # the default (without the supervised reference) is under nine minutes
    seconds = float(re.search(r"\| \*\*total\*\* \| \*\*([0-9.]+)\*\* \|", printed).group(1))
    assert 0 < seconds < 540
    total = float(re.search(r"Projected total: ([0-9.]+) min", printed).group(1))
    assert 0 < total < 9
    # and the other choice is priced: 3 more runs, all at once, its training counted too
    other = re.search(r"With --supervised: 9 runs, 9 at once, projected ([0-9.]+) min", printed)
    assert other is not None and float(other.group(1)) > total


def test_the_supervised_arm_is_a_reference_when_asked() -> None:
    gpu = script()
    assert [name for name, _ in gpu.arms(gpu.GPU)] == ["lejepa", "lejepa_levy2d"]
    assert "--reference" not in gpu.study_args(gpu.GPU, Path("out"), [])
    plan = gpu.resolved(gpu.Plan(supervised=True))
    assert plan.parallel == 9 and gpu.resolved(gpu.GPU).parallel == 6
    args = gpu.study_args(plan, Path("out"), [])
    assert args[:3] == [str(r) for _, r in gpu.arms(plan)]
    assert args[args.index("--names") + 1] == "lejepa,lejepa_levy2d,supervised"
    assert args[args.index("--reference") + 1] == "supervised"
    assert gpu.parse(["out", "--no-supervised"]).supervised is False


def test_out_dir_is_required_unless_projecting(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        script().main(["--dry-run"])
    assert stop.value.code == 2
    assert "OUT_DIR is required" in capsys.readouterr().err
