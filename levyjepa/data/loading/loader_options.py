"""DataLoader speed options of a recipe: pinned memory and persistent workers.

* ``trainer.pin_memory`` (CUDA only): batches are copied into page-locked host memory by the
  loader, so that the copy to the GPU runs asynchronously (Accelerate is then told to copy with
  ``non_blocking=True``).
* ``trainer.persistent_workers``: loader workers live for the whole run instead of being started
  again at every epoch (and for every evaluation). A worker holds its own copy of the dataset,
  so a dataset whose augmentation follows ``set_epoch`` must keep its epoch where started
  workers see it: it says so with a true ``epoch_in_shared_memory`` attribute (as
  :class:`levyjepa.data.views.multi_view.MultiViewDataset` does). For any other dataset with
  ``set_epoch``, workers are not kept, rather than silently repeating the first epoch's views.

Loader workers ignore SIGINT and SIGTERM from anyone but their own main process
(:func:`ignore_stop_signals`): a terminal's Ctrl-C, and a cluster's SIGTERM, reach every
process of the group, and the training loop (:mod:`levyjepa.interrupt`) decides when to stop; a
worker that died of the signal would make the main process's DataLoader raise at once. A
SIGTERM from the main process itself (how ``multiprocessing`` and the DataLoader end workers
that outlive their loader) still ends the worker, or the main process would wait on it forever
at exit.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of the loaders: the worker ignores SIGINT, and SIGTERM unless its
    main process sent it.

    SIGTERM is blocked and taken by a thread that reads who sent it (``sigwaitinfo``); where
    that does not exist (macOS, Windows) SIGTERM keeps its default action.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not hasattr(signal, "sigwaitinfo"):
        return
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    threading.Thread(target=_end_on_sigterm_from, args=(parent,), daemon=True,
                     name="levyjepa-sigterm").start()


def _end_on_sigterm_from(parent: int) -> None:
    """Wait for SIGTERMs; end the process on one from ``parent``, ignore the others.

    The worker dies of the signal itself, as it would without this thread, so the main process
    sees the ending it saw before. An ``os._exit(143)`` instead made the DataLoader's child
    handler report a worker that "exited unexpectedly with exit code 143" (a traceback at the
    main process's exit, after the quickstart's pictures).
    """
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid == parent:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            signal.raise_signal(signal.SIGTERM)  # to this thread: the default action, death


def epoch_reaches_workers(dataset: Any) -> bool:
    """Whether persistent workers would see the epochs set on ``dataset`` by the main process."""
    return not hasattr(dataset, "set_epoch") or bool(getattr(dataset, "epoch_in_shared_memory",
                                                             False))


def loader_options(
    dataset: Any, *, workers: int, on_cuda: bool, pin_memory: bool, persistent_workers: bool
) -> dict[str, Any]:
    """Keyword arguments of ``torch.utils.data.DataLoader`` for ``dataset``.

    Args:
        dataset: The dataset the loader reads.
        workers: Loader worker processes (0: load in the main process).
        on_cuda: Whether batches go to a CUDA device.
        pin_memory: ``trainer.pin_memory`` (takes effect on CUDA only).
        persistent_workers: ``trainer.persistent_workers`` (takes effect with workers, and only
            when the dataset's epoch reaches started workers).

    Returns:
        ``num_workers``, ``pin_memory``, ``persistent_workers`` and, with workers,
        ``worker_init_fn`` (:func:`ignore_stop_signals`).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
    options: dict[str, Any] = dict(
        num_workers=workers,
        pin_memory=bool(pin_memory and on_cuda),
        persistent_workers=bool(persistent_workers and workers > 0
                                and epoch_reaches_workers(dataset)),
    )
    if workers > 0:
        options["worker_init_fn"] = ignore_stop_signals
    return options
