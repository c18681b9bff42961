"""Cross-process reductions that keep autograd intact.

A prior whose statistic depends on the whole batch (SIGReg's empirical characteristic function)
must see the *global* batch. Its partial sums are combined with :func:`all_reduce_sum`, whose
backward is again an all-reduce: after DDP averages gradients over ``W`` ranks, every parameter
receives exactly the gradient of one process on the concatenated batch. A plain
``torch.distributed.all_reduce`` is invisible to autograd and silently scales that gradient by
``1 / W``.

The two autograd functions below wrap the public ``torch.distributed.all_reduce`` and
``all_gather``. They replace ``torch.distributed.nn.functional.all_reduce`` / ``all_gather``,
which do the same but are deprecated (a ``FutureWarning`` on every call, from every process);
the replacement torch suggests lives in a private module (``torch.distributed.
_functional_collectives``).
"""

from __future__ import annotations

from typing import Any

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


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the backward sums the gradients over processes in turn."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


class _AllGatherCat(torch.autograd.Function):
    """Every process's ``x`` concatenated along ``dim``; the backward gives each process the
    sum over processes of the gradients of its own slice (a reduce-scatter)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dim: int) -> torch.Tensor:
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.dim, ctx.length = dim, x.shape[dim]
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        total = _AllReduceSum.apply(grad)
        return total.narrow(ctx.dim, dist.get_rank() * ctx.length, ctx.length), None


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over all processes, differentiably (identity on one process)."""
    if world_size() == 1:
        return x
    return _AllReduceSum.apply(x)


def all_gather_cat(x: torch.Tensor, *, dim: int) -> torch.Tensor:
    """Concatenate ``x`` from all processes along ``dim``, differentiably (the global batch).

    Every process must pass the same shape. The backward sums, over processes, the gradients of
    each process's slice; as every process computes the same global loss, DDP's average then
    gives each parameter the gradient of one process on the concatenated batch (the argument
    above, for statistics such as VICReg's covariance that are not sums of per-sample terms).
    """
    if world_size() == 1:
        return x
    return _AllGatherCat.apply(x, dim % x.dim())
