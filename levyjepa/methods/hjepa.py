"""``hjepa``: a JEPA whose predictor moves a latent state forward in time by Hamiltonian dynamics.

HJEPA (the Hamiltonian JEPA of seed ``003``): an embedding is read as a state ``(q, p)``; the
predictor integrates it along a separable Hamiltonian ``H = |p|^2 / 2 + V(q)`` with a learnable
potential ``V`` (:mod:`levyjepa.methods.hamiltonian`, symplectic leapfrog) and is trained to
land on the target's state; SIGReg (R. Balestriero and Y. LeCun, "LeJEPA", arXiv:2511.08544)
keeps the states from collapsing. On clips "forward" is forward in time. For each clip:

1. a context window of ``window`` tubelet steps starting at ``t0`` and a target window of the
   same length starting at ``t0 + k`` are drawn (horizon ``k`` uniform in ``horizon``, ``t0``
   uniform over what fits; from ``(seed, step, rank)``);
2. the encoder runs on each window's tubelets alone (the masked forward of ``video_vit``: the
   context never sees the frames it predicts); each window's tokens are mean-pooled to ``z``
   ``(D,)`` and a BatchNorm MLP (``state_proj``) maps ``z`` to the state ``s = (q, p)``, each
   of width ``state_dim``;
3. the context state is integrated ``k * steps`` leapfrog steps of size ``dt`` (``steps`` per
   tubelet step, so the integration time is proportional to the time gap), with optional
   ``damping``;
4. ``pred_loss`` is the mean squared distance between the integrated and the target state on
   the coordinates of ``match`` (``q``, ``p`` or ``qp``, the seed's choice); the target state
   keeps its gradient (LeJEPA's reading: no teacher, no stop-gradient);
5. ``sigreg`` is SIGReg on the states of both windows ``(2, B, 2 * state_dim)``; ``loss = (1 -
   lamb) * pred_loss + lamb * sigreg``.

Diagnostics logged with the terms (detached; the seed's names): ``q_pr`` and ``p_pr`` (the
participation ratio ``(sum lambda)^2 / sum lambda^2`` of the batch covariance of the context
``q`` and ``p``, an effective rank between 1 and ``state_dim``), ``q_std_min`` (the smallest
per-coordinate standard deviation of ``q`` over the batch, divided by ``B``), ``q2`` and ``p2``
(mean ``|q|^2`` and ``|p|^2``), ``V_var`` (batch variance of ``V(q)``) and ``energy_drift``
(mean ``|H_end - H_start|`` over mean ``|H_start|`` of the integration; 0 up to the
integrator's error without damping).

Outputs: ``emb`` ``(B, D)`` (the mean of the encoder's tokens on the full clip, without gradient:
the evaluation's readout, for the online probe; one forward of the full clip per step), ``state``
``(2, B, 2 * state_dim)`` (both windows' states) and ``tokens_proj`` ``(2B, window, H', W', K)``
(the token projector on both windows' fields, complete ``window x H' x W'`` grids, so a
``levy3d`` prior applies to them unchanged; only when a prior reads it).

Precision and compilation: see :mod:`levyjepa.methods.hamiltonian` (the integration runs in
float32 under bf16 autocast and is never compiled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from levyjepa.core.arg_checks import check_positive_int
from levyjepa.core.dist import rank
from levyjepa.core.registry import METHODS, PRIORS
from levyjepa.encoders.heads import projector
from levyjepa.methods.base import Method, MethodNeeds, MethodOutput, full_precision
from levyjepa.methods.block_masks import mask_generator
from levyjepa.methods.hamiltonian import Potential, leapfrog
from levyjepa.methods.hamiltonian_states import (  # noqa: F401  (participation_ratio: re-exported)
    check_match,
    matched,
    participation_ratio,
    state_diagnostics,
)


@METHODS.register("hjepa", runtime=("encoder", "seed"))
class HJEPA(Method):
    """HJEPA on clips (see the module docstring).

    Args:
        encoder: The built encoder (given by the runner; its width and grid size the heads).
        seed: The run's seed (given by the runner; windows are drawn from ``(seed, step,
            rank)``).
        window: Tubelet steps per window.
        horizon: ``[low, high]`` range of the gap ``k`` between the windows' starts, in tubelet
            steps (``high`` is cut to what the clip allows).
        state_dim: Width of ``q`` and of ``p``.
        state_hidden: Hidden width of ``state_proj``.
        dt: Leapfrog step size.
        steps: Leapfrog steps per tubelet step of the gap.
        damping: Momentum damping rate (0: energy-conserving flow).
        base_coeff: Coefficient of the potential's harmonic well.
        residual_scale: Scale of its learnable residual MLP.
        potential_hidden: Hidden width of that MLP.
        match: State coordinates the loss compares: ``q``, ``p`` or ``qp``.
        lamb: SIGReg's weight in ``[0, 1]``.
        sigreg: The SIGReg section (``{name: sigreg, slices: 256}``; any prior on ``(V, N,
            K)``).
    """

    needs = MethodNeeds(min_views=1, masked_forward=True, proj=False, pool="mean")
    outputs = ("emb", "state", "tokens_proj")

    def __init__(
        self,
        *,
        encoder: nn.Module,
        seed: int = 0,
        window: int = 2,
        horizon: Sequence[int] = (1, 4),
        state_dim: int = 16,
        state_hidden: int = 256,
        dt: float = 0.1,
        steps: int = 4,
        damping: float = 0.0,
        base_coeff: float = 1.0,
        residual_scale: float = 0.1,
        potential_hidden: int = 64,
        match: str = "qp",
        lamb: float = 0.02,
        sigreg: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__()
        if getattr(encoder, "grid", None) is None or len(encoder.grid) != 3:
            raise ValueError("hjepa needs a video encoder with a (T', H', W') tubelet grid "
                             "(encoder: video_vit)")
        for name, value in (("window", window), ("steps", steps), ("state_dim", state_dim),
                            ("state_hidden", state_hidden)):
            check_positive_int(name, value)
        if len(horizon) != 2 or not 1 <= int(horizon[0]) <= int(horizon[1]):
            raise ValueError(f"horizon must be [low, high] with 1 <= low <= high, got "
                             f"{list(horizon)}")
        frames = encoder.grid[0]
        if window + int(horizon[0]) > frames:
            raise ValueError(f"window={window} plus the shortest horizon {int(horizon[0])} "
                             f"exceeds the clip's {frames} tubelet steps")
        if not dt > 0:
            raise ValueError(f"dt must be > 0, got {dt}")
        if damping < 0:
            raise ValueError(f"damping must be >= 0, got {damping}")
        check_match(match)
        if not 0.0 <= lamb <= 1.0:
            raise ValueError(f"lamb must be in [0, 1], got {lamb}")
        self.seed, self.window = int(seed), int(window)
        self.horizon = (int(horizon[0]), min(int(horizon[1]), frames - window))
        self.dt, self.steps, self.damping = float(dt), int(steps), float(damping)
        self.match, self.lamb, self.state_dim = match, float(lamb), int(state_dim)
        self.state_proj = projector(encoder.width, state_hidden, 2 * state_dim, nn.BatchNorm1d)
        self.potential = Potential(dim=state_dim, hidden=potential_hidden,
                                   base_coeff=base_coeff, residual_scale=residual_scale)
        self.sigreg: nn.Module = PRIORS.build(dict(sigreg or {"name": "sigreg"}),
                                              where="method.sigreg")

    def draw_windows(self, grid: tuple[int, int, int], clips: int, *,
                     step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Context window starts ``t0`` and horizons ``k``, each ``(B,)`` int64 (CPU)."""
        generator = mask_generator(seed=self.seed, step=step, rank=rank())
        low, high = self.horizon
        k = torch.randint(low, high + 1, (clips,), generator=generator)
        room = grid[0] - self.window - k + 1  # starts that fit: 0 .. T' - window - k
        t0 = (torch.rand(clips, generator=generator) * room).floor().long()
        return t0, k

    def window_index(self, starts: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """``(B, window * H' * W')`` raster indices of the windows starting at ``starts``."""
        plane = grid[1] * grid[2]
        offsets = torch.arange(self.window * plane)
        return starts.unsqueeze(1) * plane + offsets.unsqueeze(0)

    def forward(self, encoder: nn.Module, views: Sequence[torch.Tensor], *,
                step: int) -> MethodOutput:
        """Terms ``pred_loss``, ``sigreg``, ``loss`` and the diagnostics of a batch of clips."""
        clips = views[0].flatten(0, 1)  # (B, C, T, H, W)
        b = clips.shape[0]
        grid = encoder.grid_of(clips.shape[-2:])
        t0, k = self.draw_windows(grid, b, step=step)
        keep = torch.cat([self.window_index(t0, grid), self.window_index(t0 + k, grid)])
        tokens = encoder.forward_masked(clips.repeat(2, 1, 1, 1, 1), keep.to(clips.device))
        with full_precision(tokens):
            state = self.state_proj(tokens.float().mean(1)).unflatten(0, (2, b))  # (2, B, 2S)
            q0, p0 = state[0].chunk(2, -1)
            k_dev = k.to(clips.device)
            path = leapfrog(self.potential, q0, p0, dt=self.dt, steps=k_dev * self.steps,
                            damping=self.damping)
            q1, p1 = state[1].chunk(2, -1)
            pred_loss = F.mse_loss(matched(path.q, path.p, self.match),
                                   matched(q1, p1, self.match))
            sigreg = self.sigreg(state, step=step)
            terms = {"pred_loss": pred_loss, "sigreg": sigreg,
                     "loss": (1 - self.lamb) * pred_loss + self.lamb * sigreg}
            with torch.no_grad():
                terms.update(self.diagnostics(q0.detach(), p0.detach(), path))
        with torch.no_grad():
            emb = encoder.forward_tokens(clips).mean((1, 2, 3))
        outputs = {"emb": emb, "state": state}
        if encoder.tokens_proj is not None:
            field = tokens.unflatten(1, (self.window, grid[1], grid[2]))
            outputs["tokens_proj"] = encoder.tokens_proj(field)
        return MethodOutput(terms=terms, outputs=outputs)

    def diagnostics(self, q: torch.Tensor, p: torch.Tensor, path: Any) -> dict[str, torch.Tensor]:
        """The seed's diagnostics of the context states and of the integration
        (:func:`levyjepa.methods.hamiltonian_states.state_diagnostics`)."""
        return state_diagnostics(self.potential, q, p, path)

    def extra_repr(self) -> str:
        return (f"window={self.window}, horizon={list(self.horizon)}, dt={self.dt:g}, "
                f"steps={self.steps}, damping={self.damping:g}, match={self.match}, "
                f"lamb={self.lamb:g}")
