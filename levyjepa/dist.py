"""Cross-process reductions that keep autograd intact.

A prior whose statistic depends on the whole batch (SIGReg's empirical characteristic function)
must see the *global* batch. Its partial sums are combined with
``torch.distributed.nn.functional.all_reduce``, whose backward is again an all-reduce: after
DDP averages gradients over ``W`` ranks, every parameter receives exactly the gradient of one
process on the concatenated batch. A plain ``torch.distributed.all_reduce`` is invisible to
autograd and silently scales that gradient by ``1 / W``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over all processes, differentiably (identity on one process)."""
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x, op=dist.ReduceOp.SUM)
