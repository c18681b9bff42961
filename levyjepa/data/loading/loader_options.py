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

Loader workers ignore SIGINT (:func:`ignore_stop_signals`): a terminal's Ctrl-C reaches every
process of its group, and the training loop (:mod:`levyjepa.training.interrupt`) decides when to
stop; a worker that died of it would make the main process's DataLoader raise at once. SIGTERM keeps
its default action: it is how ``multiprocessing`` and the DataLoader end workers that outlive
their loader, so a worker must die of it (ignored, the main process would wait on it forever at
exit; caught, its later death made the DataLoader report a failed worker at exit). A SIGTERM
sent to the whole process group (some cluster schedulers) therefore still ends the workers.
"""

from __future__ import annotations

import signal
from typing import Any

# Keys of the ``data`` section that configure the loader rather than the data source.
DATA_LOADER_KEYS: dict[str, type] = {"batch_size": int, "workers": int}


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of the loaders: the worker ignores SIGINT and SIGUSR1, which reach
    every process of a terminal's process group or of a SLURM job (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


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
