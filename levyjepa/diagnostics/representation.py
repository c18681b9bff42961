"""Training-time diagnostics of the representation, on the current batch's outputs.

Logged like the losses (``metrics.jsonl`` and the trackers) every ``log.diagnostics_every``
steps (0: off), computed without gradients on the outputs the step already has:

- ``diag/emb_rankme``, ``diag/proj_rankme``: RankMe, the exponential of the entropy of the
  normalised singular values of the embedding matrix (Q. Garrido, R. Balestriero, L. Najman
  and Y. LeCun, "RankMe: Assessing the downstream performance of pretrained self-supervised
  representations by their rank", ICML 2023): ``p_k = s_k / sum(s) + eps``,
  ``RankMe = exp(-sum_k p_k log p_k)``, on the raw (uncentred) matrix as in the paper;
- ``diag/emb_pr``, ``diag/proj_pr``: participation ratio of the covariance eigenvalues
  ``l_k`` (of the centred matrix), ``(sum l)^2 / sum l^2``;
- ``diag/emb_min_std``, ``diag/proj_min_std``: the smallest per-dimension standard deviation
  over the batch; a value below ``collapse_std`` prints a one-time collapse warning;
- ``diag/ep_<family>``: per orientation family of the configured Lévy-sheet prior, the mean
  over the batch's fields of the Epps-Pulley statistic ``EP_b`` of the token field
  ``tokens_proj`` against the prior's law, with the step's channel rotation (the training
  statistic ``within`` is the mean over families of these, before any weighting by the
  prior's weight, gamma, ``priors.within.weight``, so the baseline's ``gamma = 0`` runs show
  them too).

``emb`` is ``(N*V, E)`` and ``proj`` ``(V, N, K)`` is read as ``(V*N, K)``; with several
processes every statistic is computed on the local batch and averaged across processes.
Both ranks are bounded by ``min(rows, dims)``: ``proj`` with ``K = 16`` has rank at most 16.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Optional

import torch
from torch import nn

from levyjepa.priors.cf_diagnostics import cf_diagnostics
from levyjepa.priors.levy_sheet import LevySheetPrior

__all__ = [
    "COLLAPSE_STD",
    "TrainingDiagnostics",
    "min_std",
    "participation_ratio",
    "rank_metrics",
    "rankme",
]

COLLAPSE_STD = 1e-4
"""Smallest per-dimension standard deviation below which a collapse warning is printed."""

_EPS = 1e-7  # RankMe's epsilon (Garrido et al., 2023)


def _matrix(x: torch.Tensor) -> torch.Tensor:
    """``(rows, dims)`` float32 view of an embedding (``(V, N, K)`` becomes ``(V*N, K)``)."""
    if x.dim() < 2:
        raise ValueError(f"embeddings must have shape (rows, dims), got {tuple(x.shape)}")
    return x.detach().reshape(-1, x.shape[-1]).float()


def rankme(x: torch.Tensor, *, eps: float = _EPS) -> torch.Tensor:
    """RankMe effective rank of an embedding matrix (Garrido et al., ICML 2023).

    Args:
        x: Embeddings ``(rows, dims)`` (leading axes are flattened into rows).
        eps: Added to the normalised singular values before the entropy.

    Returns:
        Scalar float32 in ``[1, min(rows, dims)]`` (up to ``eps``); 0 for an all-zero matrix.
    """
    s = torch.linalg.svdvals(_matrix(x))
    total = s.sum()
    if total <= 0:
        return total.new_zeros(())
    p = s / total + eps
    return torch.exp(-(p * p.log()).sum())


def participation_ratio(x: torch.Tensor) -> torch.Tensor:
    """Participation ratio ``(sum l)^2 / sum l^2`` of the covariance eigenvalues ``l``.

    Args:
        x: Embeddings ``(rows, dims)``; centred over rows here.

    Returns:
        Scalar float32 in ``[1, min(rows - 1, dims)]``; 0 when every row is the same.
    """
    m = _matrix(x)
    lam = torch.linalg.svdvals(m - m.mean(0, keepdim=True)).square()
    denom = lam.square().sum()
    if denom <= 0:
        return denom.new_zeros(())
    return lam.sum().square() / denom


def min_std(x: torch.Tensor) -> torch.Tensor:
    """Smallest per-dimension standard deviation over rows, scalar float32."""
    return _matrix(x).std(0).min()


def rank_metrics(x: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
    """``{prefix}_rankme``, ``{prefix}_pr`` and ``{prefix}_min_std`` of one embedding."""
    return {f"{prefix}_rankme": rankme(x), f"{prefix}_pr": participation_ratio(x),
            f"{prefix}_min_std": min_std(x)}


class TrainingDiagnostics:
    """The diagnostics logged during training (see the module docstring).

    Args:
        every: Interval in optimiser steps (0: never).
        prior: The run's Lévy prior (the first prior on ``tokens_proj``), or ``None``; only a
            :class:`~levyjepa.priors.levy_sheet.LevySheetPrior` gives per-family statistics.
        collapse_std: Threshold of the collapse warning.
        warn: Prints the collapse warning (once per run).
    """

    def __init__(
        self,
        *,
        every: int,
        prior: Optional[nn.Module] = None,
        collapse_std: float = COLLAPSE_STD,
        warn: Callable[[str], None] = print,
    ) -> None:
        if every < 0:
            raise ValueError(f"log.diagnostics_every must be >= 0, got {every}")
        self.every = every
        self.prior = prior if isinstance(prior, LevySheetPrior) else None
        self.collapse_std = collapse_std
        self.warn = warn
        self.warned = False

    def due(self, step: int) -> bool:
        """Whether diagnostics are logged after optimiser step ``step`` (counted from 1)."""
        return self.every > 0 and step % self.every == 0

    @torch.no_grad()
    def __call__(
        self,
        outputs: Mapping[str, torch.Tensor],
        *,
        step: int,
        reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ) -> dict[str, float]:
        """Measure one batch's outputs.

        Args:
            outputs: The method's named outputs for the batch (``emb`` ``(N*V, E)``, ``proj``
                ``(V, N, K)``, ``tokens_proj`` ``(N*V, *grid, K)``; each measured when
                present).
            step: The step the outputs were computed at (seeds the prior's rotation, so the
                per-family statistics are those behind that step's ``within``).
            reduce: Averages a 1-D tensor across processes (e.g.
                ``lambda t: accelerator.reduce(t, "mean")``); ``None`` on one process.

        Returns:
            ``{"diag/<name>": value}``.
        """
        metrics: dict[str, torch.Tensor] = {}
        for name in ("emb", "proj"):
            if outputs.get(name) is not None:
                metrics.update(rank_metrics(outputs[name], name))
        if self.prior is not None and outputs.get("tokens_proj") is not None:
            fields = outputs["tokens_proj"].detach()
            for fam in cf_diagnostics(self.prior, fields, step=step):
                metrics[f"ep_{fam.name}"] = fam.statistic.mean()
        names = list(metrics)
        device = next(iter(outputs.values())).device
        values = torch.stack([metrics[k].float().to(device) for k in names])
        if reduce is not None:
            values = reduce(values)
        result = {f"diag/{k}": float(v) for k, v in zip(names, values.tolist())}
        smallest = min((v for k, v in result.items() if k.endswith("_min_std")),
                       default=float("inf"))
        if smallest < self.collapse_std and not self.warned:
            self.warned = True
            self.warn(f"diagnostics: step {step}: smallest per-dimension std of emb/proj is "
                      f"{smallest:.3g} < {self.collapse_std:g}: the representation may be "
                      "collapsing")
        return result
