"""Trackers chosen in the recipe: wandb (offline by default, never a login prompt), tensorboard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_train import ROOT, read_metrics, tiny


def test_wandb_and_tensorboard_without_a_login(tmp_path: Path) -> None:
    """A 2-step run with both trackers, no wandb credentials and no standard input: it must not
    wait for a login; wandb writes an offline run inside the run directory, tensorboard its
    events, and metrics.jsonl is written as without trackers."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    home = tmp_path / "home"  # no ~/.netrc, no wandb settings of the machine's user
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(home), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "levyjepa.run", str(ROOT / "recipes" / "quickstart.yaml"),
         *tiny(run, "trainer.max_steps=2", "log.every=1", "log.trackers=[wandb,tensorboard]")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path, env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    offline = sorted((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, sorted(p.name for p in (run / "wandb").iterdir())
    assert list(offline[0].glob("*.wandb")), sorted(p.name for p in offline[0].iterdir())
    assert not (home / ".netrc").exists()

    events = EventAccumulator(str(run / "tensorboard" / "levyjepa"))
    events.Reload()
    assert {"train/inv", "train/sigreg", "test/acc"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("train/inv")] == [1, 2]
    assert [e["step"] for e in read_metrics(run) if "train/inv" in e] == [1, 2]
