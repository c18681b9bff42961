"""Send the offline evaluation's pictures to the trackers the run was trained with.

``python -m levyjepa.eval`` runs after training, so it opens the trackers itself: tensorboard
writes to the run's own ``tensorboard/`` folder (a separate ``eval`` sub-run), wandb to a run
named ``<run>-eval`` in the run directory (offline unless ``WANDB_MODE`` says otherwise, so no
login prompt). Unknown tracker names are refused by the recipe check before training, so any
other name is skipped here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from levyjepa.pictures import log_images


def log_eval_images(trackers: Iterable[str], images: dict[str, bytes], run_dir: Path, *,
                    step: int) -> None:
    """Log PNG ``images`` to each named tracker at ``step``, then close the trackers."""
    opened = []
    try:
        for name in trackers:
            if name == "tensorboard":
                from accelerate.tracking import TensorBoardTracker

                tracker = TensorBoardTracker("eval", str(run_dir / "tensorboard"))
            elif name == "wandb":
                from accelerate.tracking import WandBTracker

                os.environ.setdefault("WANDB_SILENT", "true")
                tracker = WandBTracker(f"{run_dir.name}-eval", dir=str(run_dir),
                                       mode=os.environ.get("WANDB_MODE", "offline"),
                                       name=f"{run_dir.name}-eval")
            else:
                continue
            opened.append(tracker)
            if hasattr(tracker, "start"):
                tracker.start()
        log_images(opened, images, step=step)
    finally:
        for tracker in opened:
            tracker.finish()
