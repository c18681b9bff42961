"""Representation diagnostics (levyjepa.diagnostics.representation): effective ranks, collapse, EP
per family."""

from __future__ import annotations

import pytest
import torch

from levyjepa.diagnostics.representation import (
    TrainingDiagnostics,
    min_std,
    participation_ratio,
    rankme,
)
from levyjepa.encoders.output import EncoderOutput
from levyjepa.priors.jump_diffusion_sheets import LevySheet2D


def low_rank(n: int, dim: int, rank: int, *, seed: int = 0,
             scales: torch.Tensor | None = None) -> torch.Tensor:
    """``(n, dim)`` Gaussian rows in a random ``rank``-dimensional subspace (isotropic there)."""
    gen = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(dim, rank, generator=gen, dtype=torch.float64))
    coeffs = torch.randn(n, rank, generator=gen, dtype=torch.float64)
    if scales is not None:
        coeffs = coeffs * scales
    return coeffs @ basis.T


@pytest.mark.parametrize("rank", [1, 4, 16, 48])
def test_isotropic_low_rank_gives_its_rank(rank: int) -> None:
    """Rank-r isotropic Gaussian embeddings (n = 4096 rows in 64 dims): RankMe and the
    participation ratio are within 3 % of r (their finite-sample deficit is about r / n
    relative, from the spread of the singular values), and never above r (+1e-3)."""
    x = low_rank(4096, 64, rank)
    for value in (rankme(x), participation_ratio(x)):
        assert rank * 0.97 <= float(value) <= rank + 1e-3
    assert float(rankme(3.0 * x)) == pytest.approx(float(rankme(x)), rel=1e-5)  # scale-free


def test_anisotropic_and_degenerate_cases() -> None:
    """Unequal variances lower both measures below the rank; PR is the more sensitive one."""
    scales = torch.tensor([1.0, 1.0, 0.1, 0.1], dtype=torch.float64)
    x = low_rank(4096, 32, 4, scales=scales)
    pr, rm = float(participation_ratio(x)), float(rankme(x))
    # PR = (2 + 0.02)^2 / (2 + 0.0002) = 2.04: two strong directions, two weak ones
    assert pr == pytest.approx(2.04, rel=0.03)
    assert pr < rm < 4.0
    zeros = torch.zeros(16, 8)
    assert float(rankme(zeros)) == 0.0 and float(participation_ratio(zeros)) == 0.0
    assert float(participation_ratio(torch.ones(16, 8))) == 0.0  # identical rows: no variance
    assert float(min_std(torch.stack([torch.arange(16.0), torch.ones(16)], 1))) == 0.0
    # proj-shaped (V, N, K) input is read as (V*N, K)
    assert float(rankme(low_rank(512, 8, 8).reshape(2, 256, 8))) == pytest.approx(8, rel=0.03)


def _output(tokens_proj: torch.Tensor | None, *, collapsed: bool = False
            ) -> dict[str, torch.Tensor]:
    """A method's outputs (the encoder's fields, by name)."""
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(16, 12, generator=gen)
    if collapsed:
        emb[:, 3] = 0.5
    return EncoderOutput(emb=emb, proj=torch.randn(2, 8, 6, generator=gen),
                         tokens=torch.randn(16, 5, 5, 4, generator=gen),
                         tokens_proj=tokens_proj)._asdict()


def test_training_diagnostics_metrics_and_ep_per_family() -> None:
    prior = LevySheet2D()
    fields = 0.7 * torch.randn(16, 5, 5, 6, generator=torch.Generator().manual_seed(2))
    diag = TrainingDiagnostics(every=5, prior=prior)
    assert [s for s in range(1, 16) if diag.due(s)] == [5, 10, 15]
    assert not TrainingDiagnostics(every=0).due(10)
    metrics = diag(_output(fields), step=7)
    assert set(metrics) == {f"diag/{p}_{m}" for p in ("emb", "proj")
                            for m in ("rankme", "pr", "min_std")} | {"diag/ep_axis",
                                                                     "diag/ep_diagonal"}
    # the mean over families of the per-family EP means is the prior's loss (within)
    within = float(prior(fields, step=7))
    assert (metrics["diag/ep_axis"] + metrics["diag/ep_diagonal"]) / 2 == pytest.approx(
        within, rel=1e-5)
    assert 1.0 <= metrics["diag/proj_rankme"] <= 6.0
    # no Lévy prior, or no token field: no EP entries; a reduce callback is applied
    plain = TrainingDiagnostics(every=1)(_output(None), step=0, reduce=lambda t: 2 * t)
    assert not any(k.startswith("diag/ep_") for k in plain)
    assert plain["diag/emb_rankme"] == pytest.approx(2 * metrics["diag/emb_rankme"], rel=1e-5)


def test_collapse_warning_once() -> None:
    said: list[str] = []
    diag = TrainingDiagnostics(every=1, warn=said.append)
    metrics = diag(_output(None, collapsed=True), step=3)
    assert metrics["diag/emb_min_std"] == 0.0
    diag(_output(None, collapsed=True), step=4)
    assert len(said) == 1 and "step 3" in said[0] and "collapsing" in said[0]
    with pytest.raises(ValueError, match="log.diagnostics_every must be >= 0"):
        TrainingDiagnostics(every=-1)
