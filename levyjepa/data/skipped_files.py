"""The ``data/skipped_files`` metric: distinct unreadable files met so far, over all processes.

A dataset that skips unreadable files (:class:`levyjepa.data.video_clips.ClipDataset`) marks
them in ``dataset.unreadable``, a 0/1 tensor per item in shared memory that its loader workers
write. Each process has its own copy; the flags are combined with an element-wise maximum
across processes, so a file met by several processes counts once.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from levyjepa.dist import world_size


def skipped_files_metric(dataset: Dataset, *, device: torch.device) -> dict[str, float]:
    """``{"data/skipped_files": count}``, or ``{}`` for datasets that never skip files.

    A collective operation when distributed: call it on every process.

    Args:
        dataset: The training dataset.
        device: The process's device (the all-reduce runs there).
    """
    flags = getattr(dataset, "unreadable", None)
    if not isinstance(flags, torch.Tensor):
        return {}
    flags = flags.to(device=device, dtype=torch.int32)
    if world_size() > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return {"data/skipped_files": float(flags.sum())}
