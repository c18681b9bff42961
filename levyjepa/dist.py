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


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


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


def all_gather_cat(x: torch.Tensor, *, dim: int) -> torch.Tensor:
    """Concatenate ``x`` from all processes along ``dim``, differentiably (the global batch).

    The backward sums, over processes, the gradients of each process's slice; as every process
    computes the same global loss, DDP's average then gives each parameter the gradient of one
    process on the concatenated batch (the argument above, for statistics such as VICReg's
    covariance that are not sums of per-sample terms).
    """
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=dim)
