"""``saccade``: Saccade JEPA, predicting the embedding of a small eye movement away.

Saccade JEPA (the seed repository's "Saccade JEPA", after the small rapid eye movements of
mammals): a JEPA (Assran et al., CVPR 2023) whose context and target are two views of one image
a small rigid motion apart, with an EMA teacher, a cycle-consistency term and VICReg.

For each image (view 0 of each sample of the batch's global views is the full image):

1. views (:mod:`levyjepa.methods.saccade_views`): view 2 is the centre crop, view 1 the same
   crop after a motion ``g = (theta, t)``, ``|theta| <= max_rotation_deg``, ``|t_x|, |t_y| <=
   max_translation * (min(H, W) - c) / 2`` px, nearest neighbour. With probability
   ``swap_prob`` the views swap. The student reads the *input* view ``a`` (view 1, or view 2 when
   swapped), the teacher the *target* view ``b``; the motion handed to the predictor is ``h``
   with ``a(p) = b(h(p))``: ``h = g``, or ``h = g^{-1}`` when swapped. Motions, views and swaps
   are drawn from ``(seed, step, rank)`` (the generator of the masks,
   :func:`levyjepa.methods.block_masks.mask_generator`).
2. the motion's code: ``h`` normalised to ``x = (theta / r, t_x / S, t_y / S)`` in ``[-1, 1]``
   (:func:`~levyjepa.methods.saccade_views.normalise`), each entry encoded as NeRF does
   (Mildenhall et al., ECCV 2020), ``gamma_L(x) = (sin(pi 2^k x), cos(pi 2^k x))_{k < L}``
   with ``L = rot_freqs`` (10) for ``theta`` and ``trans_freqs`` (4) for each of ``t_x, t_y``
   (``2 * 10 + 4 * 4 = 36`` features), then a linear map to the embedding width ``E``:
   ``e(h) = W [gamma_10(x_theta), gamma_4(x_tx), gamma_4(x_ty)] + w_0``.
3. with the student's embeddings ``s_a, s_b`` (``emb`` of the encoder) and the teacher's
   ``z_b`` (no gradient), the predictor ``P`` (an MLP of ``predictor_depth`` linear layers with
   GELU between them, each layer its own weights) gives

   * ``pred = Huber_delta(P(s_a + e(h)), z_b)``, mean over samples and dimensions;
   * ``cycle = MSE(P(P(s_a + e(h)) + e(h^{-1})), sg(s_a))``: moving back returns the student's
     embedding of the input view (``sg``: the target is detached, as the teacher's is);
   * VICReg (Bardes, Ponce & LeCun, ICLR 2022; :class:`levyjepa.methods.vicreg_loss.VICRegLoss`)
     on the student's projections of the two views, ``proj`` ``(2, N, K)`` (the encoder's
     projector is VICReg's expander, as in the ``vicreg`` method), gathered over processes;
   * ``loss = pred_coeff * pred + cycle_coeff * cycle + vicreg``, ``vicreg = inv_coeff * inv +
     var_coeff * var + cov_coeff * cov``.

``target: transform`` ("predict the transform instead"): ``P`` reads ``[s_a, z_b]`` and
regresses the normalised motion, ``pred = Huber_delta(P([s_a, z_b]), x(h))``; no cycle term and
no motion code.

The teacher is an EMA copy of the encoder (BYOL, Grill et al., NeurIPS 2020; I-JEPA's target
encoder; :mod:`levyjepa.methods.ema_teacher`), momentum ``[start, end]`` over the schedule, and
is the evaluated encoder (evaluation, export and the online probe read it).

Outputs: ``emb`` ``(N, E)``, the teacher's embedding of the target view (the evaluated encoder,
read by the online probe; no gradient, so a prior on it trains nothing); ``proj`` ``(2, N, K)``,
``tokens`` and ``tokens_proj`` ``(2N, H', W', .)`` of the student's two views (row ``2n + v``,
``v = 0`` the input view).

The seed's code builds its predictor as ``[Linear, GELU] * (depth - 1)``, which repeats the same
module objects, so its hidden layers share weights; here every layer is its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import nn

from levyjepa.core.arg_checks import check_positive_int
from levyjepa.core.arg_checks import float_pair as pair
from levyjepa.core.dist import all_gather_cat, rank
from levyjepa.core.registry import METHODS
from levyjepa.methods.base import Method, MethodNeeds, MethodOutput, full_precision
from levyjepa.methods.block_masks import mask_generator
from levyjepa.methods.ema_teacher import EMATeacher, momentum_at
from levyjepa.methods.saccade_views import (
    Motion,
    centre_crop,
    crop_side,
    draw,
    invert,
    normalise,
    render,
    select,
)
from levyjepa.methods.vicreg_loss import VICRegLoss

TARGETS = ("embedding", "transform")


def nerf_encoding(x: torch.Tensor, freqs: int) -> torch.Tensor:
    """``(N, D)`` to ``(N, D * 2 * freqs)``: per entry, ``sin(pi 2^k x)`` for ``k < freqs``,
    then ``cos(pi 2^k x)`` (NeRF's positional encoding, Mildenhall et al., ECCV 2020)."""
    scales = math.pi * 2.0 ** torch.arange(freqs, dtype=x.dtype, device=x.device)
    angles = (x[..., None] * scales).flatten(-2)  # (N, D * freqs), entry-major
    return torch.cat([angles.sin(), angles.cos()], -1)


class MotionEmbedding(nn.Module):
    """A normalised motion ``(N, 3)`` ``(theta, t_x, t_y)`` to ``(N, width)``: NeRF codes of
    ``theta`` (``rot_freqs``) and of ``t_x, t_y`` (``trans_freqs``), then a linear layer."""

    def __init__(self, *, rot_freqs: int, trans_freqs: int, width: int) -> None:
        super().__init__()
        self.rot_freqs, self.trans_freqs = rot_freqs, trans_freqs
        self.linear = nn.Linear(2 * rot_freqs + 4 * trans_freqs, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code = torch.cat([nerf_encoding(x[:, :1], self.rot_freqs),
                          nerf_encoding(x[:, 1:], self.trans_freqs)], -1)
        return self.linear(code)


class MLPPredictor(nn.Sequential):
    """``depth`` linear layers, ``in -> hidden -> ... -> hidden -> out``, GELU between them;
    every layer a new module (no weight sharing)."""

    def __init__(self, *, in_dim: int, hidden: int, out_dim: int, depth: int) -> None:
        widths = [in_dim] + [hidden] * (depth - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < depth - 1:
                layers.append(nn.GELU())
        super().__init__(*layers)


def _number(name: str, value: float, *, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


@METHODS.register("saccade", runtime=("encoder", "seed"))
class SaccadeJEPA(Method):
    """Saccade JEPA (see the module docstring).

    Args:
        encoder: The built encoder (given by the runner; the EMA teacher starts as its copy).
        seed: The run's seed (given by the runner; motions are drawn from ``(seed, step,
            rank)``).
        crop: The views' side: pixels (an int) or a fraction of the full image's side (a
            float in ``(0, 1]``, rounded to the nearest pixel).
        max_rotation_deg: Largest rotation, degrees (``<= 45``).
        max_translation: Largest translation on each axis, a fraction of the margin ``(min(H,
            W) - crop) / 2`` on each side (in ``[0, 1]``).
        swap_prob: Probability that the views swap (the motion is then inverted).
        rot_freqs: NeRF frequencies ``L`` of the rotation.
        trans_freqs: NeRF frequencies ``L`` of each translation axis.
        predictor_hidden: Hidden width of the predictor.
        predictor_depth: Its linear layers (>= 2).
        huber_delta: The Huber loss's ``delta`` (quadratic below, linear above).
        pred_coeff: Weight of ``pred``.
        cycle_coeff: Weight of ``cycle`` (``target: embedding``).
        inv_coeff: VICReg's invariance weight.
        var_coeff: VICReg's variance weight.
        cov_coeff: VICReg's covariance weight.
        gamma: VICReg's target standard deviation.
        eps: Added to the variance under VICReg's square root.
        momentum: EMA momentum ``[start, end]`` over the schedule.
        target: ``embedding`` (predict the teacher's embedding) or ``transform`` (regress the
            motion).

    Terms ``pred``, ``cycle`` (``target: embedding``), ``inv``, ``var``, ``cov`` (unweighted),
    ``vicreg`` (their weighted sum) and ``loss``.
    """

    needs = MethodNeeds(min_views=1)
    outputs = ("emb", "proj", "tokens", "tokens_proj")

    def __init__(
        self,
        *,
        encoder: nn.Module,
        seed: int = 0,
        crop: Union[int, float] = 0.75,
        max_rotation_deg: float = 2.0,
        max_translation: float = 0.9,
        swap_prob: float = 0.5,
        rot_freqs: int = 10,
        trans_freqs: int = 4,
        predictor_hidden: int = 256,
        predictor_depth: int = 3,
        huber_delta: float = 1.0,
        pred_coeff: float = 1.0,
        cycle_coeff: float = 1.0,
        inv_coeff: float = 25.0,
        var_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        momentum: Sequence[float] = (0.996, 1.0),
        target: str = "embedding",
    ) -> None:
        super().__init__()
        if isinstance(crop, bool) or not isinstance(crop, (int, float)) or crop <= 0 or (
                isinstance(crop, float) and crop > 1):
            raise ValueError(f"crop must be pixels (an int >= 1) or a fraction in (0, 1], "
                             f"got {crop!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        for name, value in (("rot_freqs", rot_freqs), ("trans_freqs", trans_freqs),
                            ("predictor_hidden", predictor_hidden)):
            check_positive_int(name, value)
        check_positive_int("predictor_depth", predictor_depth)
        if predictor_depth < 2:
            raise ValueError(f"predictor_depth must be >= 2, got {predictor_depth}")
        start, end = pair("momentum", momentum)
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f"momentum must satisfy 0 <= start <= end <= 1, got {[start, end]}")
        self.crop, self.seed, self.target = crop, int(seed), target
        self.max_rotation = math.radians(_number("max_rotation_deg", max_rotation_deg,
                                                 low=0.0, high=45.0))
        self.max_translation = _number("max_translation", max_translation, low=0.0, high=1.0)
        self.swap_prob = _number("swap_prob", swap_prob, low=0.0, high=1.0)
        if not _number("huber_delta", huber_delta, low=0.0) > 0:
            raise ValueError(f"huber_delta must be > 0, got {huber_delta!r}")
        self.huber_delta = float(huber_delta)
        self.pred_coeff = _number("pred_coeff", pred_coeff, low=0.0)
        self.cycle_coeff = _number("cycle_coeff", cycle_coeff, low=0.0)
        self.momentum = (start, end)
        width = int(encoder.emb_dim)
        # weights drawn in this order: motion embedding, predictor (the teacher is a copy)
        if target == "embedding":
            self.motion_embedding = MotionEmbedding(rot_freqs=rot_freqs,
                                                    trans_freqs=trans_freqs, width=width)
            self.predictor = MLPPredictor(in_dim=width, hidden=predictor_hidden, out_dim=width,
                                          depth=predictor_depth)
        else:  # no motion code: DDP refuses parameters that never get a gradient
            self.motion_embedding = None
            self.predictor = MLPPredictor(in_dim=2 * width, hidden=predictor_hidden, out_dim=3,
                                          depth=predictor_depth)
        self.vicreg = VICRegLoss(inv_coeff=inv_coeff, var_coeff=var_coeff,
                                 cov_coeff=cov_coeff, gamma=gamma, eps=eps)
        self.teacher = EMATeacher(encoder)

    @classmethod
    def evaluated_key(cls, section: Mapping[str, Any]) -> str:
        """``method.teacher.encoder``: the EMA teacher is the evaluated encoder."""
        return "method.teacher.encoder"

    def evaluated_encoder(self, encoder: nn.Module) -> nn.Module:
        return self.teacher.encoder

    def max_shift(self, side: int, size: tuple[int, int]) -> float:
        """Largest translation on each axis, pixels, for ``side`` px crops of ``size`` images."""
        return self.max_translation * (min(size) - side) / 2

    def make_views(self, full: torch.Tensor, *, step: int
              ) -> tuple[torch.Tensor, torch.Tensor, Motion, torch.Tensor]:
        """Input and target views ``(N, C, c, c)`` of the full images ``(N, C, H, W)``, the
        motion ``h`` from input to target (``a(p) = b(h(p))``) and the normalised ``x(h)``
        ``(N, 3)``, drawn from ``(seed, step, rank)``."""
        n, _, height, width = full.shape
        side = crop_side(self.crop, height, width)
        max_shift = self.max_shift(side, (height, width))
        generator = mask_generator(seed=self.seed, step=step, rank=rank())
        motion = draw(n, max_rotation=self.max_rotation, max_shift=max_shift,
                      generator=generator)
        swap = torch.rand(n, generator=generator, dtype=torch.float64) < self.swap_prob
        moved, centre = render(full, motion, side), centre_crop(full, side)
        flip = swap.to(full.device).view(n, 1, 1, 1)
        inputs = torch.where(flip, centre, moved)
        targets = torch.where(flip, moved, centre)
        h = select(swap, invert(motion), motion)
        x = normalise(h, max_rotation=self.max_rotation, max_shift=max_shift)
        return inputs, targets, h, x.to(full.device)

    def forward(self, encoder: nn.Module, views: Sequence[torch.Tensor], *,
                step: int) -> MethodOutput:
        """Terms ``pred``, ``cycle``, ``inv``, ``var``, ``cov``, ``vicreg`` and ``loss``."""
        full = views[0][:, 0]  # view 0 of each sample: the full image
        inputs, targets, h, x = self.make_views(full, step=step)
        n = full.shape[0]
        student = encoder(torch.stack([inputs, targets], 1))  # emb rows 2n + v
        s_a = student.emb.unflatten(0, (n, 2))[:, 0]
        with torch.no_grad():
            z_b = self.teacher.encoder(targets.unsqueeze(1)).emb  # (N, E)
        if self.motion_embedding is not None:
            pred = self.predictor(s_a + self.motion_embedding(x))
            back_code = normalise(invert(h), max_rotation=self.max_rotation,
                                  max_shift=self.max_shift(inputs.shape[-1], full.shape[-2:]))
            back = self.predictor(pred + self.motion_embedding(back_code.to(full.device)))
        else:
            pred = self.predictor(torch.cat([s_a, z_b], -1))
        with full_precision(student.emb):
            terms: dict[str, torch.Tensor] = {}
            if self.motion_embedding is not None:
                terms["pred"] = F.huber_loss(pred.float(), z_b.float(), delta=self.huber_delta)
                terms["cycle"] = F.mse_loss(back.float(), s_a.detach().float())
            else:
                terms["pred"] = F.huber_loss(pred.float(), x, delta=self.huber_delta)
            vic = self.vicreg(all_gather_cat(student.proj.float(), dim=1))
            terms.update(inv=vic["inv"], var=vic["var"], cov=vic["cov"], vicreg=vic["loss"])
            loss = self.pred_coeff * terms["pred"] + vic["loss"]
            if "cycle" in terms:
                loss = loss + self.cycle_coeff * terms["cycle"]
            terms["loss"] = loss
        outputs = {"emb": z_b, "proj": student.proj, "tokens": student.tokens}
        if student.tokens_proj is not None:
            outputs["tokens_proj"] = student.tokens_proj
        return MethodOutput(terms=terms, outputs=outputs)

    @torch.no_grad()
    def after_step(self, encoder: nn.Module, *, step: int, total_steps: int) -> None:
        """The EMA update of the teacher."""
        start, end = self.momentum
        self.teacher.update(encoder, momentum=momentum_at(step, total_steps, start=start,
                                                          end=end))

    def extra_repr(self) -> str:
        return (f"crop={self.crop!r}, target={self.target}, "
                f"max_rotation_deg={math.degrees(self.max_rotation):g}, "
                f"max_translation={self.max_translation:g}, swap_prob={self.swap_prob:g}")
