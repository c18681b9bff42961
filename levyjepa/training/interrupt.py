"""Ctrl-C, SIGTERM and SIGUSR1 during training: finish the step, write a checkpoint, say how to
continue.

While the training loop runs, :class:`StopSignals` catches ``SIGINT`` (Ctrl-C), ``SIGTERM``
(``kill``, a scheduler's pre-emption) and ``SIGUSR1`` (the warning SLURM sends before a job's
time limit or pre-emption with ``--signal=USR1@SECONDS``, to every process of the job step):
the first one only raises a flag, the loop finishes the
step it is in, writes a checkpoint at that step, and :mod:`levyjepa.run` prints one line with
the command that continues the run (``resume=auto``) and exits with ``128 + signal number``
(130 for Ctrl-C, 143 for SIGTERM, 138 for SIGUSR1). The same signal a second time stops at once
(``KeyboardInterrupt``: the step is lost, the last complete checkpoint stays the latest).

With several processes every one of them must stop after the same step, or the checkpoint's
collective writes would hang: the flag is agreed by one reduction per step
(:meth:`StopSignals.agreed`). A terminal's Ctrl-C reaches the loader workers too (they share
the process group): they ignore it
(:func:`levyjepa.data.loading.loader_options.ignore_stop_signals`), so no worker dies under
the step being finished; they end when the main process does. They ignore SIGUSR1 likewise,
which SLURM sends to the job's every process. SIGTERM is meant for the main
process (``kill PID``): workers keep its default action, which is how their main process ends
them, so a SIGTERM sent to the whole process group ends them too and the run stops with the
DataLoader's error instead.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Optional

import torch

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
"""The signals that ask a run to stop after its current step."""


class TrainingInterrupted(Exception):
    """Training stopped after a step because a stop signal arrived; its checkpoint is written.

    Attributes:
        signal_name: ``SIGINT``, ``SIGTERM`` or ``SIGUSR1``.
        exit_status: ``128 +`` the signal's number, the shell's convention.
        step: The step the checkpoint holds.
        checkpoint: The checkpoint folder.
        run_dir: The run directory.
        main_process: Whether this process is the one that reports.
        distributed: Whether the run has several processes (started by a launcher).
    """

    def __init__(self, signum: int, *, step: int, checkpoint: Any, run_dir: Any,
                 main_process: bool, distributed: bool) -> None:
        self.signal_name = signal.Signals(signum).name
        self.exit_status = 128 + signum
        self.step, self.checkpoint, self.run_dir = step, checkpoint, run_dir
        self.main_process, self.distributed = main_process, distributed
        super().__init__(f"{self.signal_name} after step {step}: checkpoint {checkpoint}")


class StopSignals:
    """A context in which SIGINT, SIGTERM and SIGUSR1 ask the loop to stop after the current step.

    Args:
        say: Where the one-line acknowledgement goes (the main process's ``print``).

    Outside the main thread (signal handlers cannot be installed there) the context does
    nothing and the signals keep their usual effect.
    """

    def __init__(self, *, say: Callable[[str], None] = print) -> None:
        self.say = say
        self.signum: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.signum == signum:  # the same signal twice: stop now
            self.__exit__()
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum
            again = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            self.say(f"levyjepa: {signal.Signals(signum).name}: stopping after this step with a "
                     f"checkpoint ({again} again stops at once, without one)")

    def raise_if_signalled(self, run: Any, bar: Any, *, step: int, checkpointed: int) -> None:
        """After a complete step: if a process got a stop signal, checkpoint and stop.

        Args:
            run: The :class:`levyjepa.training.setup.Run`.
            bar: The progress bar, closed before the message.
            step: The step just completed.
            checkpointed: The step of the last checkpoint written.

        Raises:
            TrainingInterrupted: once the checkpoint of ``step`` is written.
        """
        signum = self.agreed(run.accelerator)  # one reduction: every process stops together
        if signum:
            bar.close()
            raise stop_after_signal(run, signum, step=step, checkpointed=checkpointed == step)

    def agreed(self, accelerator: Any) -> Optional[int]:
        """The signal any process received (``None``: none), the same on every process."""
        if accelerator.num_processes == 1:
            return self.signum
        flag = torch.tensor([float(self.signum or 0)], device=accelerator.device)
        got = int(accelerator.gather(flag).max().item())
        return got or None


def resume_command(argv: list[str], run_dir: Any, *, distributed: bool) -> str:
    """The command that continues an interrupted run: the same arguments, ``resume=auto`` and
    the run's ``out_dir`` (a default ``out_dir`` is a new timestamped folder each time)."""
    import shlex

    args = [a for a in argv if not a.startswith(("resume=", "out_dir=", "overwrite="))]
    command = shlex.join([*args, "resume=auto", f"out_dir={run_dir}"])
    if distributed:
        return f"the same launcher with -m levyjepa.run {command}"
    return f"{_python()} -m levyjepa.run {command}"


def _python() -> str:
    """``python``, or the interpreter's path when ``python`` may be another one."""
    import shutil

    found = shutil.which("python")
    return "python" if found and found == sys.executable else sys.executable


def stop_after_signal(run: Any, signum: int, *, step: int, checkpointed: bool
                      ) -> TrainingInterrupted:
    """Write the interrupted step's checkpoint (unless the loop just did) and the summary, end
    the trackers; returns the exception for the loop to raise.

    Args:
        run: The :class:`levyjepa.training.setup.Run`.
        signum: The agreed signal.
        step: The last completed step.
        checkpointed: Whether a checkpoint of ``step`` exists already.
    """
    from levyjepa.core.atomic import atomic_write_json
    from levyjepa.training.checkpoint import list_checkpoints
    from levyjepa.training.run_end import checkpoint, end_processes

    if not checkpointed:
        checkpoint(run, step)
    saved = list_checkpoints(run.run_dir)[-1]
    stopped = TrainingInterrupted(signum, step=step, checkpoint=saved, run_dir=run.run_dir,
                                  main_process=run.accelerator.is_main_process,
                                  distributed=run.accelerator.num_processes > 1)
    if run.accelerator.is_main_process:
        atomic_write_json(run.run_dir / "summary.json", {
            "recipe": run.cfg.name, "run_dir": str(run.run_dir), "steps": step,
            "stopped": f"{stopped.signal_name} after step {step}; checkpoint {saved.name}",
            "final": run.runlog.last})
    end_processes(run.accelerator)
    return stopped
