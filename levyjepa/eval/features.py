"""Frozen features of a dataset: one view per item, and the Lévy prior's statistic per family."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from levyjepa.core.progress import progress_bar
from levyjepa.priors.cf_diagnostics import cf_diagnostics
from levyjepa.priors.levy_sheet import LevySheetPrior


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int,
    device: torch.device,
    prior: Optional[LevySheetPrior] = None,
    step: int = 0,
    progress: str = "",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, list[torch.Tensor]]]:
    """Frozen ``emb`` of every item, one view each.

    Args:
        encoder: The encoder, in eval mode.
        dataset: Items ``(x, label)``, ``x`` ``(C, H, W)`` or a clip ``(C, T, H, W)``.
        batch_size: Items per forward.
        device: Where to run the encoder.
        prior: When given, the Epps-Pulley statistic of every item's ``tokens_proj`` per family.
        step: Seeds the prior's channel rotation.
        progress: Label of a progress bar (empty: none).

    Returns:
        Features float32 ``(n, E)`` and labels int64 ``(n,)`` on CPU, and ``family ->`` list of
        per-batch statistics ``(B,)`` (empty without a prior).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    feats, labels = [], []
    stats: dict[str, list[torch.Tensor]] = {}
    encoder.eval()
    for x, y in progress_bar(loader, desc=progress, transient=True, enable=bool(progress)):
        out = encoder(x.unsqueeze(1).to(device))
        feats.append(out.emb.float().cpu())
        labels.append(torch.as_tensor(y).cpu())
        if prior is not None and out.tokens_proj is not None:
            for fam in cf_diagnostics(prior, out.tokens_proj.float(), step=step):
                stats.setdefault(fam.name, []).append(fam.statistic)
    return torch.cat(feats), torch.cat(labels).long(), stats
