"""What I-JEPA and V-JEPA share: a predictor, an EMA teacher or SIGReg instead, the targets.

M. Assran et al., CVPR 2023 (I-JEPA) and A. Bardes et al., 2024 (V-JEPA) differ in their
masks, their grid (patches or tubelets) and their loss; this base class holds the rest:

* the predictor (:class:`levyjepa.methods.jepa_predictor.JEPAPredictor`);
* ``teacher: ema``: the EMA teacher (:class:`levyjepa.methods.ema_teacher.EMATeacher`), updated
  after every step with momentum rising from ``momentum[0]`` to ``momentum[1]``, and the
  encoder that evaluation, export and the online probe read (:meth:`evaluated_key`);
* ``teacher: none`` (LeJEPA's proposal, Balestriero & LeCun, arXiv:2511.08544): the encoder's
  own full-input tokens as targets, and SIGReg on a BatchNorm projector of the method's own
  (``sigreg_proj``), ``loss = (1 - lamb) * pred_loss + lamb * sigreg`` (:meth:`terms_of`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
from torch import nn

from levyjepa.core.arg_checks import float_pair as pair
from levyjepa.core.registry import PRIORS
from levyjepa.encoders.heads import projector
from levyjepa.methods.base import Method, full_precision
from levyjepa.methods.ema_teacher import EMATeacher, momentum_at
from levyjepa.methods.jepa_predictor import JEPAPredictor

TEACHERS = ("ema", "none")


class MaskedJEPA(Method):
    """Base of the masked JEPA methods (see the module docstring).

    A subclass checks its own values, calls ``super().__init__`` with these (which checks them
    and builds the modules), then sets its masks.

    Args:
        encoder: The built encoder (the EMA teacher starts as its copy).
        seed: The run's seed (masks are drawn from ``(seed, step, rank)``).
        teacher: ``ema`` or ``none``.
        momentum: EMA momentum ``[start, end]`` over the schedule (``teacher: ema``).
        predictor_width: The predictor's width.
        predictor_depth: Its blocks.
        predictor_heads: Its attention heads.
        lamb: SIGReg's weight in ``[0, 1]`` (when ``sigreg`` is set).
        sigreg: SIGReg section: required with ``teacher: none``, optional with ``ema``.
        sigreg_proj_hidden: Hidden width of the projector SIGReg reads (built with ``sigreg``).
        sigreg_proj_dim: Its output width ``K``.
    """

    def __init__(self, *, encoder: nn.Module, seed: int, teacher: str,
                 momentum: Sequence[float], predictor_width: int, predictor_depth: int,
                 predictor_heads: int, lamb: float, sigreg: Optional[Mapping[str, Any]],
                 sigreg_proj_hidden: int, sigreg_proj_dim: int) -> None:
        super().__init__()
        if teacher not in TEACHERS:
            raise ValueError(f"teacher must be one of {', '.join(TEACHERS)}, got {teacher!r}")
        if teacher == "none" and sigreg is None:
            raise ValueError("teacher: none needs sigreg ({name: sigreg}): without a teacher "
                             "nothing else keeps the embeddings from collapsing")
        start, end = pair("momentum", momentum)
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f"momentum must satisfy 0 <= start <= end <= 1, got {[start, end]}")
        if not 0.0 <= lamb <= 1.0:
            raise ValueError(f"lamb must be in [0, 1], got {lamb}")
        self.seed, self.momentum, self.lamb = int(seed), (start, end), float(lamb)
        # weights drawn in this order: predictor, SIGReg's projector (the teacher is a copy)
        self.predictor = JEPAPredictor(in_dim=encoder.width, width=predictor_width,
                                       depth=predictor_depth, heads=predictor_heads)
        self.teacher = EMATeacher(encoder) if teacher == "ema" else None
        self.sigreg: Optional[nn.Module] = None
        self.sigreg_proj: Optional[nn.Module] = None
        if sigreg is not None:  # LeJEPA's SIGReg reads a projector's output, not the tokens
            self.sigreg = PRIORS.build(dict(sigreg), where="method.sigreg")
            self.sigreg_proj = projector(encoder.width, sigreg_proj_hidden, sigreg_proj_dim,
                                         nn.BatchNorm1d)

    @classmethod
    def evaluated_key(cls, section: Mapping[str, Any]) -> str:
        """``method.teacher.encoder`` (the target encoder its authors evaluate) with ``teacher:
        ema``, else ``encoder``."""
        return "method.teacher.encoder" if section.get("teacher", "ema") == "ema" else "encoder"

    def evaluated_encoder(self, encoder: nn.Module) -> nn.Module:
        return self.teacher.encoder if self.teacher is not None else encoder

    def fields(self, encoder: nn.Module,
               inputs: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The target field (the teacher's, without gradient, or the encoder's own) and the
        encoder's own full-input field when anything reads it (``None`` otherwise): with the
        EMA teacher, that costs one more forward of the encoder, made only when the encoder has
        a token projector (a prior reads ``tokens_proj``)."""
        if self.teacher is None:
            field = encoder.forward_tokens(inputs)
            return field, field
        with torch.no_grad():
            field = self.teacher.encoder.forward_tokens(inputs)
        own = encoder.forward_tokens(inputs) if encoder.tokens_proj is not None else None
        return field, own

    def terms_of(self, pred_loss: torch.Tensor, pooled: Sequence[torch.Tensor], *,
                 step: int) -> dict[str, torch.Tensor]:
        """``pred_loss``, ``sigreg`` (when set: on the projector of the ``(B, D)`` tensors of
        ``pooled``, stacked as views ``(len(pooled), B, K)``) and ``loss``, in float32."""
        with full_precision(pred_loss):
            terms = {"pred_loss": pred_loss}
            if self.sigreg is None:
                terms["loss"] = pred_loss
                return terms
            proj = self.sigreg_proj(torch.cat([p.float() for p in pooled]))  # (V * B, K)
            terms["sigreg"] = self.sigreg(proj.unflatten(0, (len(pooled), -1)), step=step)
            terms["loss"] = (1 - self.lamb) * pred_loss + self.lamb * terms["sigreg"]
            return terms

    @torch.no_grad()
    def after_step(self, encoder: nn.Module, *, step: int, total_steps: int) -> None:
        """The EMA update of the teacher (``teacher: ema``)."""
        if self.teacher is not None:
            start, end = self.momentum
            self.teacher.update(encoder, momentum=momentum_at(step, total_steps,
                                                              start=start, end=end))
