"""`python -m levyjepa.reproduce`: the table and plot from run directories, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from levyjepa.reproduce import (
    RUNS,
    main,
    parse_runs,
    plot_curves,
    read_run,
    results_table,
    write_results,
)
from levyjepa.studies.seed_results import SEED_RUNS

TINY = ["views.global_size=16", "views.global_views=2", "data.batch_size=4", "data.workers=0",
        "encoder.img_size=16", "encoder.patch_size=4", "encoder.embed_dim=32", "encoder.depth=1",
        "encoder.num_heads=2", "encoder.pool_heads=2", "encoder.emb_dim=32",
        "encoder.proj_hidden=32", "method.sigreg.slices=16", "log.trackers=[]",
        "log.progress=false", "log.every=1", "log.pictures=false"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_run(run_dir: Path, *, gamma: float, kappa: float, lam: float, net_lr: float,
             within: list[float], acc: float, summary: bool = True) -> Path:
    """A run directory as levyjepa.training.loop writes it: config, metrics and summary."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(
        f"method: {{name: lejepa, kappa: {kappa}}}\n"
        f"priors: {{within: {{name: levy2d, input: tokens_proj, weight: {gamma}, lam: {lam}}}}}\n"
        f"optim: {{net_lr_bs256: {net_lr}}}\ntrainer: {{epochs: 800, max_steps: null}}\n")
    events = [{"step": s + 1, "epoch": 0, "train/inv": 0.5 / (s + 1), "train/sigreg": 2.0,
               "train/within": w, "train/lr": 1e-4} for s, w in enumerate(within)]
    events.append({"step": len(within), "epoch": 1, "test/acc": acc})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if summary:
        (run_dir / "summary.json").write_text(json.dumps({"epochs": 2.0, "steps": len(within)}))
    return run_dir


@pytest.fixture
def fake_out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    fake_run(out / "image_baseline", gamma=0.0, kappa=1.0, lam=2.0, net_lr=5e-4,
             within=[0.5, 0.7, 0.9], acc=0.25)
    fake_run(out / "image_levy2d", gamma=1.0, kappa=1.0, lam=2.0, net_lr=1e-3,  # overridden
             within=[0.5, 0.0, 0.002], acc=0.5)
    fake_run(out / "image_noinv_baseline", gamma=0.0, kappa=0.0, lam=1.0, net_lr=5e-5,
             within=[0.4], acc=0.125, summary=False)  # still running: no summary yet
    return out  # image_noinv_levy2d: not run


def test_table_from_fake_runs(fake_out: Path) -> None:
    results = {name: read_run(fake_out / name) for name in RUNS}
    assert results["image_noinv_levy2d"] is None
    assert results["image_baseline"].final["train/within"] == 0.9
    assert results["image_baseline"].curves["train/within"] == ([1, 2, 3], [0.5, 0.7, 0.9])
    lines = results_table(results).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == [
        "run", "gamma", "kappa", "levy lam", "net_lr_bs256", "epochs run",
        "test/acc seed (epoch 800)", "test/acc measured",
        "final train/within seed", "final train/within measured",
        "final train/sigreg seed", "final train/sigreg measured",
        "final train/inv seed", "final train/inv measured"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [r[0] for r in rows] == [run.label for run in SEED_RUNS]
    assert rows[0] == ["exp 1 baseline", "0", "1", "2", "5e-4", "2 of 800", "0.90726", "0.25",
                       "1.54163", "0.9", "1.14062", "2", "0.03608", "0.166667"]
    assert rows[1][4] == "**1e-3** (seed 5e-4)"  # an override of the seed's setting is flagged
    assert rows[1][8:10] == ["0.00148", "0.002"]
    assert rows[2][5] == "—" and rows[2][7] == "0.125"  # no summary yet: epochs unknown
    assert rows[3] == ["exp 2 Lévy 2D (no invariance)", "1", "0", "1", "5e-5", "—",
                       "0.59057", "—", "0.00128", "—", "0.63281", "—", "0.3265", "—"]


def test_results_and_curves_files(fake_out: Path) -> None:
    table, curves = write_results(fake_out, command="python -m levyjepa.reproduce --out x")
    text = table.read_text()
    assert "python -m levyjepa.reproduce --out x" in text and "| exp 1 Lévy 2D |" in text
    assert curves.read_bytes().startswith(PNG_MAGIC)
    assert not list(fake_out.glob(".*.tmp"))  # atomic writes leave no temporary file
    empty = fake_out / "empty.png"  # no run at all: still a (blank) figure
    plot_curves({}, empty)
    assert empty.read_bytes().startswith(PNG_MAGIC)


def test_command_line_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert parse_runs(None) == list(RUNS)
    assert parse_runs("image_noinv_levy2d, image_baseline") == ["image_baseline",
                                                                 "image_noinv_levy2d"]
    assert main(["--out", str(tmp_path), "--runs", "image_basline"]) == 2
    assert "unknown run 'image_basline'; valid: image_baseline" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "out_dir=elsewhere"]) == 2
    assert "set per run by reproduce" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "trainer.epohcs=1"]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err


def test_reproduce_runs_four_recipes_on_generated_images(
        tmp_path: Path, image_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "repro"
    args = ["--out", str(out), "trainer.max_steps=2", f"data.root={image_tree}", *TINY]
    assert main(args) == 0
    for name in RUNS:
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["steps"] == 2
    text = (out / "results.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| exp ")]
    assert len(rows) == 4
    for row, seed in zip(rows, SEED_RUNS):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == seed.label and cells[5] == "1 of 800"  # 8 images / batch 4
        assert cells[6] == f"{seed.test_acc:.6g}" and cells[8] == f"{seed.within:.6g}"
        assert all(c != "—" for c in cells)  # every measured number is there
        assert "**" not in row  # the seed's setting, not overridden
    assert (out / "curves.png").read_bytes().startswith(PNG_MAGIC)
    report = (out / "report.md").read_text()  # levyjepa.report's table of every metric
    assert sum(line.startswith("| image_") for line in report.splitlines()) == 4
    for name in ("losses", "test_acc", "within"):
        assert (out / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    capsys.readouterr()
    # same command again: every run is complete and skipped
    assert main(args) == 0
    assert capsys.readouterr().out.count("skipped") == 4
    # a longer run of one recipe continues from its checkpoint
    longer = ["--out", str(out), "--runs", "image_levy2d", "trainer.max_steps=3",
              f"data.root={image_tree}", *TINY]
    assert main(longer) == 0
    summary = json.loads((out / "image_levy2d" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["steps_this_session"] == 1
