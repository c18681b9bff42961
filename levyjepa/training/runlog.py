"""A run's metrics: ``metrics.jsonl`` plus the experiment trackers, main process only.

Every event is one JSON object per line, ``{"step": ..., "epoch": ..., "<name>": value, ...}``,
with the metric names of docs/method.md, the objective: every term the method and the priors
return (``train/loss``, the optimised sum, ``train/inv``, ``train/sigreg``,
``train/orig_lejepa_loss``, ``train/within``), the loop's ``train/probe_loss``,
``train/grad_norm`` and ``train/lr``, and ``test/acc``. The same values go to the trackers
chosen in the recipe (``wandb``, offline unless ``log.wandb_mode`` says otherwise, and
``tensorboard``) through Accelerate.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from levyjepa.core.atomic import atomic_write_text

METRICS_FILE = "metrics.jsonl"

FSYNC_EVERY_S = 10.0
"""Events are flushed to the OS at once, forced to disk at most this often: an fsync per event
cost 2.6 ms (median) and up to 0.3 s here, a large part of a 40 ms GPU step when logging every
step. A killed process loses no event (each is flushed); a crash of the machine itself can lose
the last seconds of them."""


class RunLog:
    """Writes metric events and keeps the last and best value of each metric.

    Args:
        accelerator: The run's accelerator (only its main process writes).
        run_dir: Run directory.
        resume_step: When resuming, events after this step (written by the interrupted run
            after its last checkpoint) are dropped from ``metrics.jsonl``.
    """

    def __init__(self, accelerator: Accelerator, run_dir: Path, *, resume_step: int | None) -> None:
        self.accelerator = accelerator
        self.path = run_dir / METRICS_FILE
        self.last: dict[str, float] = {}
        self.best: dict[str, float] = {}
        self._synced_at = float("-inf")
        if not accelerator.is_main_process:
            return
        if resume_step is not None and self.path.exists():
            kept = []
            for line in self.path.read_text().splitlines():
                event = json.loads(line)
                if event["step"] <= resume_step:
                    kept.append(line)
                    self._remember(event)
            atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))
        elif self.path.exists():
            self.path.unlink()  # a fresh run in an existing directory starts a fresh log

    def _remember(self, event: dict[str, Any]) -> None:
        for key, value in event.items():
            if key in ("step", "epoch"):
                continue
            self.last[key] = value
            if key.endswith("acc"):
                self.best[key] = max(value, self.best.get(key, float("-inf")))

    def log(self, metrics: dict[str, float], *, step: int, epoch: int) -> None:
        """Record one event (call on every process; only the main process writes)."""
        if not self.accelerator.is_main_process:
            return
        event = {"step": step, "epoch": epoch, **{k: float(v) for k, v in metrics.items()}}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")
            f.flush()
            now = time.monotonic()
            if now - self._synced_at >= FSYNC_EVERY_S:
                os.fsync(f.fileno())
                self._synced_at = now
        self._remember(event)
        self.accelerator.log(metrics, step=step)
