"""The method seam: what an SSL method is to the training loop.

A method is an ``nn.Module`` registered in :data:`levyjepa.METHODS`. The loop gives it the
encoder and a batch of views; it returns its named loss terms and the tensors priors may read::

    @METHODS.register("my_method")
    class MyMethod(Method):
        needs = MethodNeeds(min_views=2)
        outputs = ("emb", "proj")

        def __init__(self, *, weight: float = 1.0) -> None: ...

        def forward(self, encoder, views, *, step):
            out = encoder(views[0])
            loss = ...
            return MethodOutput(terms={"loss": loss}, outputs={"emb": out.emb, "proj": out.proj})

The loop optimises ``terms["loss"]`` (plus the weighted priors of the recipe and the online
probe), logs every term as ``train/<name>`` averaged over processes, and knows no term by name.
After every optimiser step it calls :meth:`Method.after_step` (an EMA teacher updates there).

What the cut leaves to the method and what to the loop, with I-JEPA and V-JEPA in mind
(Assran et al., CVPR 2023; Bardes et al., 2024): the method owns every module it trains beside
the encoder (a predictor, a projector of its own) and every module it does not train by
gradient (an EMA teacher), so they travel with it into the distributed wrapper and the
checkpoint; it draws its own masks from ``step`` (on the device, identical on every process),
and calls the encoder as it needs (several view groups, a masked forward). The loop owns the
data, the optimiser, the online probe (fed with ``outputs["emb"]``, detached unless the method
says ``needs.labels_train_encoder``), the priors attached in the recipe (fed with
``outputs[input]``), precision, logging and checkpoints. Compared with
stable-pretraining's ``forward(batch, stage) -> dict`` and eb_jepa's ``JEPA(encoder, predictor,
regularizer)``, the regulariser is not part of the method here: a recipe attaches any prior to
any named output of any method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Optional

import torch
from torch import nn

from levyjepa.encoders.output import EncoderOutput


@dataclass(frozen=True)
class MethodNeeds:
    """What a method needs from the data and the encoder (checked before training starts).

    Attributes:
        min_views: Global views per sample, at least (the first view group).
        local_views: Whether a second group of smaller views is accepted (multi-crop).
        tokens_proj: The encoder must build its token projector (``tokens_proj``).
        masked_forward: The encoder must offer ``forward_masked`` (a forward on a subset of
            patch tokens, as I-JEPA's context encoder).
        proj: The encoder must build its pooled projector (``proj``); a method that never
            reads it says ``False``, so no parameter is left without a gradient (which
            distributed training refuses).
        pool: The encoder's pooling to ``emb`` the method needs (``encoder.pool``: ``mean``
            for I-JEPA, whose ``emb`` is the mean of the evaluated encoder's tokens and which
            trains no pooling head); ``None``: any.
        labels_train_encoder: The online probe's cross-entropy trains the encoder: the probe
            reads ``emb`` without detaching it, so the labels reach the encoder (at the
            encoder's learning rate; the probe's own weights keep ``optim.probe_lr_bs256``).
            For a supervised reference (``supervised``), not an SSL method; a run on data
            without labels is refused before anything is written.
    """

    min_views: int = 1
    local_views: bool = False
    tokens_proj: bool = False
    masked_forward: bool = False
    proj: bool = True
    pool: Optional[str] = None
    labels_train_encoder: bool = False


class MethodOutput(NamedTuple):
    """What a method returns for one batch.

    Attributes:
        terms: Scalar tensors; ``terms["loss"]`` is the one to optimise, every term is logged
            as ``train/<name>``.
        outputs: Named tensors that priors may attach to (``input:`` in a recipe's ``priors``);
            ``outputs["emb"]`` ``(N*V, E)``, when present, feeds the online probe (row
            ``n*V + v`` is view ``v`` of sample ``n``).
    """

    terms: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]


class Method(nn.Module):
    """Base class of SSL methods; subclasses set :attr:`needs`, :attr:`outputs`, ``forward``.

    Class attributes:
        needs: What the method needs (:class:`MethodNeeds`).
        outputs: Names of the tensors ``forward`` returns in ``MethodOutput.outputs``; a prior
            reading another name is refused when the recipe is loaded.
    """

    needs: ClassVar[MethodNeeds] = MethodNeeds()
    outputs: ClassVar[tuple[str, ...]] = ()

    def forward(self, encoder: nn.Module, views: Sequence[torch.Tensor], *,
                step: int) -> MethodOutput:  # pragma: no cover - abstract
        """Compute the loss terms of a batch.

        Args:
            encoder: The encoder being trained (a registered encoder).
            views: View groups, each ``(N, V_g, C, ...)``: the global views first, then the
                local views when the recipe makes them (``views.local_views``).
            step: Global optimisation step (seeds masks and random directions); with gradient
                accumulation, the micro-batch's draw index ``step * K + micro``
                (:mod:`levyjepa.training.accumulation`).
        """
        raise NotImplementedError

    def after_step(self, encoder: nn.Module, *, step: int, total_steps: int) -> None:
        """Called after every optimiser step with the new step count (an EMA update).

        Args:
            encoder: The encoder, just updated.
            step: Steps done so far.
            total_steps: Steps of the whole schedule (``trainer.epochs`` epochs, as the learning
                rate's; a run cut short by ``trainer.max_steps`` keeps the same schedule).
        """

    @classmethod
    def evaluated_key(cls, section: Mapping[str, Any]) -> str:
        """Where the encoder that evaluation and export read lives in the trained module's
        state (``encoder``, or ``method.teacher`` for a method whose teacher is the one its
        authors evaluate), given the recipe's ``method`` section."""
        return "encoder"

    def evaluated_encoder(self, encoder: nn.Module) -> nn.Module:
        """The encoder the online probe's test accuracy reads (the one at
        :meth:`evaluated_key`)."""
        return encoder


def encode_groups(encoder: nn.Module, views: Sequence[torch.Tensor]) -> list[EncoderOutput]:
    """Run ``encoder`` on each view group (groups differ in resolution, so one call each)."""
    return [encoder(group) for group in views]


@contextlib.contextmanager
def full_precision(like: torch.Tensor) -> Iterator[None]:
    """Compute inside in float32 even under the loop's bf16 autocast (losses, statistics)."""
    with torch.autocast(device_type=like.device.type, enabled=False):
        yield
