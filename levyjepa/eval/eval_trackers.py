"""Send the offline evaluation's pictures to the trackers the run was trained with.

``python -m levyjepa.eval`` runs after training, so it opens the trackers itself: tensorboard
writes to the run's own ``tensorboard/`` folder (a separate ``eval`` sub-run), wandb to a run
named ``<run>-eval`` in the run directory (offline unless ``WANDB_MODE`` says otherwise, so no
login prompt). Unknown tracker names are refused by the recipe check before training, so any
other name is skipped here.

Accelerate's trackers log through its own logger, which refuses to work before an Accelerate
state exists; the evaluation process has none (it builds no ``Accelerator``), so one is made
here. A tracker that still fails (a full disk, a wandb service that does not start) costs the
evaluation nothing: the scores and picture files are written before the trackers are opened, so
its failure is reported in one warning line and the evaluation ends normally.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from levyjepa.diagnostics.pictures import log_images


def log_eval_images(trackers: Iterable[str], images: dict[str, bytes], run_dir: Path, *,
                    step: int) -> None:
    """Log PNG ``images`` to each named tracker at ``step``, then close the trackers."""
    trackers = [name for name in trackers if name in ("tensorboard", "wandb")]
    if not trackers:
        return
    from accelerate import PartialState

    PartialState()  # the state accelerate's tracker logging requires (a single process here)
    opened = []
    try:
        _open_and_log(trackers, images, run_dir, step=step, opened=opened)
    except Exception as err:  # reported below: the results are already written
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        print(f"levyjepa: warning: the evaluation pictures were not sent to "
              f"{', '.join(trackers)} ({type(err).__name__}: {first}); they are in "
              f"{run_dir / 'pictures'}", file=sys.stderr)
    finally:
        for tracker in opened:
            try:
                tracker.finish()
            except Exception as err:  # reported, the results are kept
                print(f"levyjepa: warning: closing the {tracker.name} tracker failed "
                      f"({type(err).__name__}: {err})", file=sys.stderr)


def _open_and_log(trackers: list[str], images: dict[str, bytes], run_dir: Path, *, step: int,
                  opened: list) -> None:
    """Open each tracker (appending it to ``opened`` for closing) and log ``images``."""
    for name in trackers:
        if name == "tensorboard":
            from accelerate.tracking import TensorBoardTracker

            tracker = TensorBoardTracker("eval", str(run_dir / "tensorboard"))
        else:
            from accelerate.tracking import WandBTracker

            os.environ.setdefault("WANDB_SILENT", "true")
            tracker = WandBTracker(f"{run_dir.name}-eval", dir=str(run_dir),
                                   mode=os.environ.get("WANDB_MODE", "offline"),
                                   name=f"{run_dir.name}-eval")
        opened.append(tracker)
        if hasattr(tracker, "start"):
            tracker.start()
    log_images(opened, images, step=step)
