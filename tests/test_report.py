"""`python -m levyjepa.report` on two tiny runs: the table and the plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from levyjepa.config.recipe import load_recipe
from levyjepa.report import best_value, main, metrics_table, read_run
from levyjepa.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Tiny quickstart runs with the Lévy 2D prior, gamma = 0 and gamma = 1 (4 steps each)."""
    from test_train import tiny

    root = tmp_path_factory.mktemp("report")
    runs = []
    for gamma in (0, 1):
        run = root / f"g{gamma}"
        train(load_recipe(ROOT / "recipes" / "quickstart.yaml",
                          tiny(run, f"priors.within.weight={gamma}",
                               "trainer.epochs=2", "trainer.max_steps=4", "log.every=1",
                               "log.diagnostics_every=2", "log.pictures=false")))
        runs.append(run)
    return runs


def test_report_on_two_runs(two_runs: list[Path], tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "compare"
    assert main([str(p) for p in two_runs] + ["--out", str(out)]) == 0
    assert "report: wrote" in capsys.readouterr().out
    lines = (out / "report.md").read_text().splitlines()
    table = [line for line in lines if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:6] == ["run", "gamma", "steps", "epochs", "test/acc", "train/loss"]
    assert {"train/within", "diag/ep_axis", "diag/emb_rankme"} <= set(header)
    rows = {r[0]: r for r in ([c.strip() for c in line.strip("|").split("|")]
                              for line in table[2:])}
    assert set(rows) == {"g0", "g1"} and rows["g0"][1] == "0" and rows["g1"][1] == "1"
    assert rows["g1"][2] == "4" and rows["g1"][3] == "1"  # 4 steps = 1 epoch of 16 / 4
    result = read_run(two_runs[1])
    within = rows["g1"][header.index("train/within")]
    assert within == (f"{result.final['train/within']:.6g} / "
                      f"{min(result.curves['train/within'][1]):.6g}")
    assert " / " not in rows["g1"][header.index("diag/emb_rankme")]  # diagnostics: final only
    for name in ("losses", "test_acc", "within", "diagnostics"):
        assert (out / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    assert not list(out.glob(".*.tmp"))


def test_offline_evaluation_in_the_table(two_runs: list[Path], tmp_path: Path) -> None:
    run = tmp_path / "copy"
    run.mkdir()
    for name in ("metrics.jsonl", "config.yaml", "summary.json"):
        (run / name).write_bytes((two_runs[0] / name).read_bytes())
    (run / "eval.json").write_text(json.dumps({"knn": {"top1": 0.625}, "linear": {"top1": 0.5}}))
    table = metrics_table([read_run(run)]).splitlines()
    assert table[0].rstrip(" |").endswith("k-NN top1 | linear top1")
    assert table[2].rstrip(" |").endswith("0.625 | 0.5")


def test_best_value_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert best_value("test/acc", [0.2, 0.5, 0.4]) == 0.5
    assert best_value("train/inv", [0.3, 0.1, 0.2]) == 0.1
    assert best_value("diag/emb_rankme", [3.0, 4.0]) is None
    assert best_value("train/lr", [1.0]) is None
    assert main([str(tmp_path / "nothing")]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
