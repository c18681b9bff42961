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
"""

from __future__ import annotations

from typing import Any


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
        ``num_workers``, ``pin_memory`` and ``persistent_workers``.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
    return dict(
        num_workers=workers,
        pin_memory=bool(pin_memory and on_cuda),
        persistent_workers=bool(persistent_workers and workers > 0
                                and epoch_reaches_workers(dataset)),
    )
