"""The output contract every encoder honours (docs/method.md, shapes)."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch


class EncoderOutput(NamedTuple):
    """What an encoder returns for a batch of ``N`` samples with ``V`` views each.

    Attributes:
        emb: ``(N*V, E)`` pooled embedding, read by the online probe. Row ``n*V + v`` is view
            ``v`` of sample ``n``.
        proj: ``(V, N, K)`` projected pooled embedding, read by the invariance term and SIGReg;
            ``None`` when the encoder was built with ``with_proj=False`` (the method never
            reads it: I-JEPA).
        tokens: ``(N*V, *grid, D)`` patch-token field; ``grid`` is ``(H', W')`` for images and
            ``(T', H', W')`` for clips.
        tokens_proj: ``(N*V, *grid, K)`` projected token field, read by the Lévy priors; ``None``
            when the encoder was built with ``with_tokens_proj=False`` (no term reads it).
    """

    emb: torch.Tensor
    proj: Optional[torch.Tensor]
    tokens: torch.Tensor
    tokens_proj: Optional[torch.Tensor]
