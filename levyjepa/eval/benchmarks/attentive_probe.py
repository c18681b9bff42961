"""An attentive probe: learnable queries cross-attending over a frozen encoder's tokens.

The probe of the frozen evaluations of V-JEPA (Bardes et al. 2024, "Revisiting Feature
Prediction for Learning Visual Representations from Video") and V-JEPA 2 (Assran et al. 2025):
instead of averaging a clip's tokens, ``Q`` learnable query tokens attend over all of them (the
``T' x H' x W'`` tokens flattened, ``(n, L, D)``), so the probe can pick *where* the evidence is;
a mean-token linear probe cannot. Here one cross-attention block::

    q      = queries + MHA(queries, LN(tokens))     # (n, Q, D)
    q      = q + MLP(LN(q))                         # mlp_ratio > 0 only
    logits = Linear(LN(mean over the Q queries))    # (n, K)

Training (:func:`fit_probes`) runs AdamW with a cosine learning-rate decay over frozen token
batches, and trains beside it, on the very same batches and steps, a linear probe on the mean
token (:class:`MeanTokenLinear`), the baseline the attentive probe is compared with. At test time
a video's clips (segments x views) are classified separately and their softmax probabilities
averaged (:func:`average_softmax`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from levyjepa.core.progress import progress_bar

TokenBatches = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]
"""``batches(epoch)`` yields ``(tokens (b, L, D) float, labels (b,) int64)`` for one epoch."""


class AttentiveProbe(nn.Module):
    """Cross-attention pooling of a token set into ``num_queries`` vectors, then a classifier.

    Args:
        dim: Token width ``D``.
        num_classes: Classes ``K``.
        num_heads: Attention heads (must divide ``dim``).
        num_queries: Learnable query tokens ``Q`` (their outputs are averaged).
        mlp_ratio: Hidden width of the block's MLP over ``dim``; ``0``: no MLP.

    Raises:
        ValueError: naming the first invalid argument.
    """

    def __init__(self, dim: int, num_classes: int, *, num_heads: int = 1, num_queries: int = 1,
                 mlp_ratio: float = 0.0) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("num_classes", num_classes),
                            ("num_heads", num_heads), ("num_queries", num_queries)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the token width {dim}")
        if not mlp_ratio >= 0:
            raise ValueError(f"mlp_ratio must be >= 0, got {mlp_ratio!r}")
        self.num_heads = num_heads
        self.queries = nn.Parameter(torch.zeros(1, num_queries, dim))
        nn.init.trunc_normal_(self.queries, std=0.02)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        hidden = int(round(dim * mlp_ratio))
        self.mlp: Optional[nn.Sequential] = None
        if hidden > 0:
            self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(),
                                     nn.Linear(hidden, dim))
        self.norm_out = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``(n, L, D)`` to pooled queries ``(n, Q, D)``."""
        n, length, dim = tokens.shape
        heads = self.num_heads
        kv = self.kv(self.norm_kv(tokens)).reshape(n, length, 2, heads, dim // heads)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # (n, heads, L, D / heads) each
        queries = self.queries.expand(n, -1, -1)
        q = self.q(queries).reshape(n, -1, heads, dim // heads).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v)  # (n, heads, Q, D / heads)
        pooled = queries + self.proj(attended.transpose(1, 2).reshape(n, -1, dim))
        if self.mlp is not None:
            pooled = pooled + self.mlp(pooled)
        return pooled

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``(n, L, D)`` to logits ``(n, K)``."""
        if tokens.dim() != 3:
            raise ValueError(f"expected tokens (n, L, D), got {tuple(tokens.shape)}")
        return self.head(self.norm_out(self.pool(tokens).mean(dim=1)))


class MeanTokenLinear(nn.Module):
    """The baseline: a linear classifier on the mean of a clip's tokens.

    Args:
        dim: Token width ``D``.
        num_classes: Classes ``K``.
    """

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``(n, L, D)`` to logits ``(n, K)``."""
        return self.head(tokens.mean(dim=1))


def fit_probes(
    probes: dict[str, nn.Module],
    batches: TokenBatches,
    *,
    epochs: int,
    steps_per_epoch: int,
    lr: float,
    weight_decay: float,
    warmup_epochs: float = 0.0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, float]:
    """Train several probes on the same frozen token batches (each its own AdamW).

    The learning rate rises linearly over ``warmup_epochs`` then decays to 0 along a cosine;
    the loss is the cross-entropy.

    Args:
        probes: Name -> probe (``(n, L, D)`` tokens to ``(n, K)`` logits); trained in place.
        batches: ``batches(epoch)`` yields ``(tokens (b, L, D), labels (b,))``.
        epochs: Passes over the data.
        steps_per_epoch: Batches per epoch (for the schedule).
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_epochs: Epochs of linear warm-up.
        device: Where the probes train.
        progress: Show a progress bar.

    Returns:
        Name -> mean training loss of the last epoch.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not lr > 0 or not weight_decay >= 0:
        raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {lr!r}, {weight_decay!r}")
    total = max(1, epochs * max(1, steps_per_epoch))
    warmup = int(warmup_epochs * max(1, steps_per_epoch))
    optimisers = {}
    for name, probe in probes.items():
        probe.to(device).train()
        optimisers[name] = torch.optim.AdamW(probe.parameters(), lr=lr,
                                             weight_decay=weight_decay)
    step = 0
    last: dict[str, float] = {}
    bar = progress_bar(desc="probe", total=total, enable=progress, transient=True)
    for epoch in range(epochs):
        sums = {name: 0.0 for name in probes}
        count = 0
        for tokens, labels in batches(epoch):
            tokens, labels = tokens.to(device).float(), labels.to(device)
            scale = ((step + 1) / warmup if step < warmup
                     else 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup)
                                                             / max(1, total - warmup)))))
            for name, probe in probes.items():
                for group in optimisers[name].param_groups:
                    group["lr"] = lr * scale
                loss = F.cross_entropy(probe(tokens), labels)
                optimisers[name].zero_grad(set_to_none=True)
                loss.backward()
                optimisers[name].step()
                sums[name] += float(loss.detach()) * len(labels)
            count += len(labels)
            step += 1
            bar.update(1)
        last = {name: s / max(1, count) for name, s in sums.items()}
    bar.close()
    for probe in probes.values():
        probe.eval()
    return last


def average_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Test-time averaging: the mean over a video's clips of their softmax probabilities.

    Args:
        logits: ``(n, C, K)``: ``C`` clips (segments x views) of each of ``n`` videos.

    Returns:
        ``(n, K)`` probabilities, each row summing to 1.
    """
    if logits.dim() != 3:
        raise ValueError(f"expected logits (n, clips, K), got {tuple(logits.shape)}")
    return logits.float().softmax(dim=-1).mean(dim=1)


@torch.no_grad()
def video_probabilities(probe: nn.Module, tokens: torch.Tensor, *, clips: int,
                        batch_size: int = 64) -> torch.Tensor:
    """Classify every clip, then average each video's clips' softmax probabilities.

    Args:
        probe: Tokens ``(b, L, D)`` to logits ``(b, K)``.
        tokens: ``(n * clips, L, D)``, the clips of video ``i`` in rows ``i * clips ...``.
        clips: Clips per video ``C``.
        batch_size: Clips per forward pass.

    Returns:
        ``(n, K)`` averaged probabilities.
    """
    if tokens.shape[0] % clips:
        raise ValueError(f"{tokens.shape[0]} clips is not a multiple of {clips} per video")
    device = next(probe.parameters()).device
    logits = torch.cat([probe(chunk.to(device).float()).cpu()
                        for chunk in tokens.split(batch_size)])
    return average_softmax(logits.reshape(-1, clips, logits.shape[-1]))
