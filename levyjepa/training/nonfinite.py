"""Non-finite losses and gradients: found before the optimiser step, never written to disk.

A step whose loss terms or gradients hold a NaN or an infinity must not reach the weights: one
AdamW update with a NaN gradient makes every touched weight and moment NaN, and a checkpoint
written after it poisons every resume. The training loop therefore checks, after the backward
pass and before ``optimizer.step()``, every loss term and the gradients' total norm (one
device-to-host transfer per step; with several processes the verdict is agreed across them, so
no process steps alone). ``trainer.on_nonfinite`` says what follows:

* ``stop`` (default): :class:`NonFiniteError`, printed by :mod:`levyjepa.run` as one line (the
  step, the non-finite terms), exit status 3; the last checkpoint stays the latest one, so
  ``resume=auto`` continues from it.
* ``skip``: the step's update is dropped (gradients zeroed, no optimiser step), as
  ``torch.amp.GradScaler`` does with overflowing steps; the schedule and the data move on. The
  count is logged as ``train/skipped_steps``.

:func:`check_finite_state` is the last line of defence: checkpoints refuse to store
non-finite weights or optimiser state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from levyjepa.training.sharding import is_sharded, local_tensor, whole_tensor


class NonFiniteError(RuntimeError):
    """Training met a non-finite loss or gradient, or a state that must not be saved."""


def finite_flags(terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """One 0/1 float per scalar term (1: finite), stacked on the terms' device."""
    return torch.stack([t.detach().float().reshape(()) for t in terms.values()]).isfinite().float()


def nonfinite_names(terms: Mapping[str, torch.Tensor], flags: list[float]) -> list[str]:
    """The metric names ``train/<term>`` whose flag is not 1."""
    return [f"train/{name}" for name, ok in zip(terms, flags) if ok < 1.0]


def grad_total_norm(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """The 2-norm of every gradient together (non-finite if any entry is), without clipping."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    # FSDP: the norm of sharded gradients is a DTensor awaiting its reduction over processes
    return whole_tensor(torch.nn.utils.get_total_norm(grads, norm_type=2.0))


def check_finite_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Raise :class:`NonFiniteError` if a weight, buffer or optimiser state is not finite.

    Raises:
        NonFiniteError: naming how many tensors are non-finite and the first few of them.
    """
    # under FSDP every process checks its own shards, and the processes agree (below)
    weights = {name: local_tensor(t) for name, t in model.state_dict().items()
               if t.is_floating_point()}
    moments = [local_tensor(v) for state in optimizer.state.values() for v in state.values()
               if isinstance(v, torch.Tensor) and v.is_floating_point()]
    tensors = [*weights.values(), *moments]
    if not tensors:
        return
    flags = torch.stack([t.isfinite().all().to(tensors[0].device) for t in tensors]).float()
    if is_sharded(model):  # a tensor is finite when every process's shard of it is
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)
    finite = flags.bool().tolist()
    bad = [name for name, ok in zip(weights, finite) if not ok]
    total_bad_state = finite[len(weights):].count(False)
    if bad or total_bad_state:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise NonFiniteError(
            f"refusing to write a checkpoint: {len(bad)} model tensor(s) ({shown or 'none'}) and "
            f"{total_bad_state} optimizer-state tensor(s) are non-finite")
