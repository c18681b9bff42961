"""The performance benchmarks run end to end on a tiny recipe and report what they promise."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.batch_size=4", "data.workers=0", "views.global_size=16", "views.global_views=2",
        "encoder.img_size=16", "encoder.patch_size=4", "encoder.embed_dim=32", "encoder.depth=1",
        "encoder.num_heads=2", "encoder.pool_heads=2", "encoder.emb_dim=32",
        "encoder.proj_hidden=32", "method.sigreg.slices=16", "log.trackers=[]",
        "log.diagnostics_every=0", "log.pictures=false", "priors.within.weight=1.0",
        "trainer.cpu_threads=1"]  # 2 threads spin in OpenMP barriers on a loaded 2-core machine


def bench(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" /
                                                  f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("augment_on", ["cpu", "device"])
def test_step_benchmark_reports_loops_phases_priors_and_ratio(
        augment_on: str, image_tree: Path, capsys: pytest.CaptureFixture) -> None:
    summary = bench("step").main([
        str(ROOT / "recipes" / "image_levy2d.yaml"), *TINY, f"data.root={image_tree}",
        f"views.on={augment_on}", "views.load_size=24", "--steps", "1", "--warmup", "1",
        "--prior-repeats", "1", "--epoch-costs"])
    printed = capsys.readouterr().out
    assert json_lines(printed)[-1]["bench"] == "step_summary"
    assert set(summary["loops"]) == {"plain", "phases", "toolkit"}
    for loop in summary["loops"].values():
        assert loop["steps"] == 1 and loop["step_s"] > 0 and loop["peak_rss_bytes"] > 0
    phases = summary["loops"]["phases"]
    for key in ("data_s", "device_views_s", "forward_s", "priors_s", "backward_s",
                "optimizer_s"):
        assert phases[key] >= 0
    assert summary["toolkit_over_plain"] > 0
    names = [p["name"] for p in summary["priors"]]
    assert names[:2] == ["sigreg", "levy2d"] and names[2].startswith("tokens_proj")
    # the method's own SIGReg on proj, then the recipe's prior under its term on its input
    assert [(p["term"], p["input"]) for p in summary["priors"]] == [
        ("sigreg", "proj"), ("within", "tokens_proj"), (None, "tokens")]
    assert all(p["share_of_step"] > 0 for p in summary["priors"])
    assert summary["flops_per_step"] > 0 and summary["projected_hours"] > 0
    assert summary["eval_s"] > 0 and summary["checkpoint_s"] > 0
    assert summary["projected_hours_with_epoch_costs"] > summary["projected_hours"]
    assert "| loop | timed steps |" in printed and "toolkit / plain step time" in printed
    results = image_tree.parent / f"step-{augment_on}.jsonl"
    results.write_text("\n".join(line for line in printed.splitlines() if line.startswith("{")))
    table = bench("table").main([str(results)])
    assert table.count("\n") == 2 and "levy2d" in table and "| 1 |" in table


def test_data_benchmark_reports_images_per_second(image_tree: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    records = bench("data").main([
        str(ROOT / "recipes" / "image_levy2d.yaml"), *TINY, f"data.root={image_tree}",
        "views.on=device", "views.load_size=24", "--workers", "0", "--batches", "1",
        "--warmup", "1", "--device", "cpu"])
    assert len(records) == 1 and records[0]["kind"] == "images"
    assert records[0]["items_per_s"] > 0 and records[0]["device_views_per_s"] > 0
    assert records[0]["item_dtype"] == "uint8" and records[0]["item_shape"] == [3, 24, 24]
    assert "| workers | images/s |" in capsys.readouterr().out


def test_augment_benchmark_compares_methods(capsys: pytest.CaptureFixture) -> None:
    records = bench("augment").main(["--images", "2", "--views", "2", "--size", "16",
                                     "--load-size", "24", "--repeats", "1",
                                     "--methods", "torchvision", "own"])
    assert [r["method"] for r in records] == ["torchvision", "own"]
    assert all(r["views_per_s"] > 0 for r in records)


def test_methods_benchmark_tabulates_trained_against_untrained(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two seeds of a tiny quickstart: one row with both accuracies, their intervals and, for
    the paired gain, no verdict (at least 3 seeds are needed); a second call reads the finished
    runs instead of training again."""
    from tiny_overrides import tiny_quickstart

    args = ["--seeds", "0", "1", "--out", str(tmp_path), str(ROOT / "recipes" / "quickstart.yaml"),
            *tiny_quickstart(batch=8, train=32, test=16, extra=["trainer.max_steps=2"])]
    assert bench("methods").main(args) == 0
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.startswith("| quickstart | 0 1 | 2 |")
    assert row.count("[") >= 4 and row.count("no verdict: 2 seeds, at least 3 are needed") == 2
    stamp = (tmp_path / "quickstart-s0" / "eval.json").stat().st_mtime
    assert bench("methods").main(args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == row
    assert (tmp_path / "quickstart-s0" / "eval.json").stat().st_mtime == stamp
