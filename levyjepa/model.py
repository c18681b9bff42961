"""The trained module: encoder plus online probe, wrapped together for distributed training."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from levyjepa.encoders.output import EncoderOutput
from levyjepa.probe import OnlineProbe


class Pretrainer(nn.Module):
    """Runs the encoder and, when there are labels, the online probe in one forward.

    Args:
        encoder: A registered encoder.
        probe: The online probe, or ``None`` for unlabelled data.
    """

    def __init__(self, encoder: nn.Module, probe: Optional[OnlineProbe]) -> None:
        super().__init__()
        self.encoder = encoder
        self.probe = probe

    def forward(self, views: torch.Tensor) -> tuple[EncoderOutput, Optional[torch.Tensor]]:
        """``(N, V, ...)`` views to the encoder output and ``(N*V, classes)`` probe logits."""
        out = self.encoder(views)
        logits = self.probe(out.emb) if self.probe is not None else None
        return out, logits
