"""An exponential-moving-average teacher: I-JEPA's target encoder.

J.-B. Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020 (the momentum encoder); M. Assran
et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive Architecture",
CVPR 2023 (the target encoder of I-JEPA). After every optimiser step the teacher's weights move
towards the student's::

    theta_teacher <- m * theta_teacher + (1 - m) * theta_student

with ``m`` rising linearly from ``m_0 = 0.996`` at the first update to ``m_1 = 1.0`` at the last
update of the schedule (:func:`momentum_at`). The teacher is never given to the optimiser (its
parameters do not require gradients); it is a submodule of the method, so it is saved in, and
restored from, every checkpoint with the student. Buffers (none in a ViT; running statistics
elsewhere) are copied from the student.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def momentum_at(step: int, total_steps: int, *, start: float, end: float) -> float:
    """The momentum of the update made after optimiser step ``step`` (counted from 1).

    Linear from ``start`` at step 1 to ``end`` at step ``total_steps`` (held there beyond).
    """
    if total_steps <= 1:
        return end
    frac = min(1.0, max(0, step - 1) / (total_steps - 1))
    return start + (end - start) * frac


class EMATeacher(nn.Module):
    """A frozen copy of ``student`` moved towards it by :meth:`update`; always in eval mode.

    Args:
        student: The encoder to copy (its current weights are the teacher's first weights).
    """

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(student)
        self.encoder.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True) -> EMATeacher:
        """Keep the teacher in eval mode whatever the trained module's mode (no dropout)."""
        super().train(mode)
        self.encoder.eval()
        return self

    @torch.no_grad()
    def update(self, student: nn.Module, *, momentum: float) -> None:
        """``teacher <- momentum * teacher + (1 - momentum) * student``, buffers copied.

        Raises:
            ValueError: if ``student`` does not have the teacher's parameters.
        """
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        ours = dict(self.encoder.named_parameters())
        theirs = dict(student.named_parameters())
        if ours.keys() != theirs.keys():
            raise ValueError("EMA teacher: the student's parameters are not the teacher's "
                             f"({sorted(ours.keys() ^ theirs.keys())[:3]})")
        names = list(ours)
        teacher = [ours[n] for n in names]
        source = [theirs[n].detach().to(ours[n].dtype) for n in names]
        torch._foreach_mul_(teacher, momentum)
        torch._foreach_add_(teacher, source, alpha=1.0 - momentum)
        for (_, mine), (_, other) in zip(self.encoder.named_buffers(), student.named_buffers()):
            mine.copy_(other)
