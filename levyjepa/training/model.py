"""The trained module: encoder, method and online probe, wrapped together for distributed
training (so the method's own modules, a predictor or a teacher, are synchronised and
checkpointed with the encoder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn

from levyjepa.methods.base import Method, MethodOutput
from levyjepa.training.online_probe import OnlineProbe


class Pretrainer(nn.Module):
    """Runs the method on the encoder and, when there are labels, the online probe.

    Args:
        encoder: A registered encoder.
        method: A registered method.
        probe: The online probe, or ``None`` for unlabelled data; built with
            ``detach=False`` for a method that trains the encoder with the labels
            (``needs.labels_train_encoder``), whose cross-entropy then reaches the encoder.
    """

    def __init__(self, encoder: nn.Module, method: Method, probe: Optional[OnlineProbe]) -> None:
        super().__init__()
        self.encoder = encoder
        self.method = method
        self.probe = probe

    def forward(self, views: Sequence[torch.Tensor], *, step: int
                ) -> tuple[MethodOutput, Optional[torch.Tensor]]:
        """View groups ``[(N, V_g, ...)]`` to the method's output and the probe's logits
        ``(N*V, classes)`` on ``outputs["emb"]`` (``None`` without a probe or an ``emb``)."""
        result = self.method(self.encoder, views, step=step)
        emb = result.outputs.get("emb")
        logits = self.probe(emb) if self.probe is not None and emb is not None else None
        return result, logits

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, ...)`` un-augmented images to ``(N, E)`` embeddings: ``emb`` of the encoder
        the method evaluates (the trained encoder, or I-JEPA's EMA teacher)."""
        return self.method.evaluated_encoder(self.encoder)(images.unsqueeze(1)).emb

    def test_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The probe's logits for ``(N, ...)`` un-augmented test images."""
        assert self.probe is not None
        return self.probe(self.embed(images))
