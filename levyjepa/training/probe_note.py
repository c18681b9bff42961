"""A hint when the online probe's final ``test/acc`` cannot be read as a measure of the encoder.

The online probe (:mod:`levyjepa.training.online_probe`) is a linear layer trained alongside the
encoder, from random weights, with the encoder's steps. After a short run it has seen few steps;
its accuracy can then lie below chance, e.g. 0.017 with 10 classes when the probe has 100 outputs
(the seed recipes' ``trainer.probe_classes: 100``), whose argmax can still fall on outputs no label
uses (a uniform guess over 100 outputs scores 0.01). The offline evaluation (``python -m
levyjepa.eval``: k-NN, and a linear probe fitted by L-BFGS on frozen features) is the number
to trust. :func:`probe_note` words the hint;
:func:`print_probe_note` prints it at the end of training
(:func:`levyjepa.training.run_end.finish_run`) and :mod:`levyjepa.eval.first_look` shows it too.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Optional

__all__ = ["NEEDS_STEPS", "print_probe_note", "probe_note", "probe_trouble"]

NEEDS_STEPS = "the online probe trains alongside the encoder and needs more steps"
"""The reason every hint gives."""


def probe_trouble(acc: Optional[float], *, classes: int, steps: int,
                  steps_per_epoch: int) -> Optional[str]:
    """What makes the online probe's accuracy hard to read, in a few words, or ``None``.

    A hint is due when the accuracy lies below chance (``1 / classes``, the accuracy of a
    uniform guess among the data's classes) or when the run is shorter than one epoch.

    Args:
        acc: The final online ``test/acc`` (``None`` or non-finite: ``None``).
        classes: The data's number of classes (the labels lie in ``[0, classes)``).
        steps: The optimiser steps the probe trained for (the run's steps).
        steps_per_epoch: Steps in one epoch.

    Returns:
        ``"below chance"``, ``"after 0.2 epoch"`` (fewer steps than one epoch) or both,
        ``"below chance after 0.2 epoch"``; ``None`` when neither holds.
    """
    if acc is None or not math.isfinite(acc) or classes < 2:
        return None
    parts = []
    if acc < 1 / classes:
        parts.append("below chance")
    if 0 < steps < steps_per_epoch:
        parts.append(f"after {steps / steps_per_epoch:.2g} epoch")
    return " ".join(parts) or None


def probe_note(acc: Optional[float], *, classes: int, outputs: int, steps: int,
               steps_per_epoch: int) -> Optional[str]:
    """Why the online probe's accuracy means little, or ``None`` when it can be read.

    Args:
        acc: The final online ``test/acc``.
        classes: The data's number of classes.
        outputs: The probe's output size (``trainer.probe_classes``, else ``classes``).
        steps: The optimiser steps the probe trained for.
        steps_per_epoch: Steps in one epoch.

    Returns:
        One sentence without a prefix (see :func:`probe_trouble` for when), e.g. ``online
        probe test/acc 0.017 is below chance (0.100 for 10 classes; the probe has 100 outputs)
        after 20 steps (0.2 epoch): the online probe trains alongside the encoder and needs
        more steps``.
    """
    trouble = probe_trouble(acc, classes=classes, steps=steps, steps_per_epoch=steps_per_epoch)
    if trouble is None:
        return None
    chance = f"{1 / classes:.3f} for {classes} classes"
    chance += f"; the probe has {outputs} outputs" if outputs != classes else ""
    epoch = f" ({steps / steps_per_epoch:.2g} epoch)" if "epoch" in trouble else ""
    after = f"after {steps} step{'' if steps == 1 else 's'}{epoch}"
    if trouble.startswith("below chance"):
        what = f"is below chance ({chance}) {after}"
    else:
        what = f"comes {after}, less than one epoch (chance {chance})"
    return f"online probe test/acc {acc:.3f} {what}: {NEEDS_STEPS}"


def print_probe_note(run: Any, *, acc: Optional[float], step: int) -> None:
    """Print :func:`probe_note` for a finished run on stderr (main process only).

    Skipped when ``log.first_look`` is on: the first look shows the hint beside the offline
    probes' accuracies.

    Args:
        run: The :class:`levyjepa.training.setup.Run`.
        acc: Its final online ``test/acc``.
        step: The step training ended at.
    """
    probe = getattr(run.pretrainer, "probe", None)
    if probe is None or run.cfg.log.first_look or not run.accelerator.is_main_process:
        return
    classes = int(run.splits.num_classes)
    # the probe's last layer (OnlineProbe: LayerNorm, Linear) gives its output size
    outputs = int(getattr(probe.net[-1], "out_features", classes))
    note = probe_note(acc, classes=classes, outputs=outputs, steps=step,
                      steps_per_epoch=int(run.steps_per_epoch))
    if note is not None:
        sys.stdout.flush()  # after the ``done:`` line, also when both go to one file
        print(f"levyjepa: note: {note}; trust the offline evaluation (python -m levyjepa.eval "
              f"{run.run_dir})", file=sys.stderr, flush=True)
