"""``ijepa``: masked latent prediction, with an EMA teacher or with SIGReg instead.

M. Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture", CVPR 2023. For each image (each global view is one image; I-JEPA uses one):

1. multi-block masks on the patch grid (:mod:`levyjepa.methods.block_masks`): ``M = 4`` target
   blocks and one context block with the targets removed, drawn from ``(seed, step, rank)`` by
   the law ``mask_law``: ``reference`` (the default: the authors' collator, so that ``ijepa``
   is the published method) or ``levyjepa`` (this library's earlier law, which the committed
   recipes with measured results pin; docs/masks.md);
2. the context encoder (the trained encoder) runs on the context patches only, the others
   dropped (:meth:`levyjepa.encoders.vit.ViTEncoder.forward_masked`);
3. the targets are the teacher's last-layer tokens of the *full* image, layer-normalised over
   the width without affine parameters, at each target block's patches;
4. the predictor (:class:`levyjepa.methods.jepa_predictor.JEPAPredictor`) fills every target
   block in from the context, and ``pred_loss`` is the smooth-L1 distance (beta 1) between
   predictions and targets, averaged over blocks, patches and channels.

``teacher: ema``: the teacher is an EMA of the encoder (:mod:`levyjepa.methods.ema_teacher`,
momentum 0.996 -> 1.0 over the schedule), without gradient; ``loss = pred_loss``. This teacher
(I-JEPA's "target encoder") is the one I-JEPA evaluates, so evaluation, export and the online
probe read it (:meth:`IJEPA.evaluated_key`). ``teacher: none``, as LeJEPA proposes
(Balestriero & LeCun, arXiv:2511.08544): the targets are the encoder's own full-image tokens,
with gradient, and SIGReg prevents collapse. As in LeJEPA, SIGReg reads a projector's output: the
mean-pooled context tokens and mean-pooled predictions of each image (two "views", ``(2, B,
D)``) go through a BatchNorm MLP of the method's own (``sigreg_proj_hidden``,
``sigreg_proj_dim``) to ``(2, B, K)``; ``loss = (1 - lamb) * pred_loss + lamb * sigreg``. The
trained encoder is the evaluated one.

Outputs for the recipe's priors: ``emb`` ``(B, D)`` (the evaluated encoder's mean-pooled
full-image tokens, I-JEPA's linear-probe readout; read by the online probe), ``tokens_proj``
``(B, H', W', K)`` (the encoder's token projector on its full-image field; only when a prior
reads it: with ``teacher: ema`` it costs one more forward of the encoder on the full image),
and ``pred_field`` ``(B*M, h, w, D)`` (the predictor's output on each ``h x w`` target block, a
complete rectangle of the grid, so a Lévy 2D prior applies to it unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from levyjepa.core.arg_checks import check_positive_int
from levyjepa.core.dist import rank
from levyjepa.core.registry import METHODS
from levyjepa.methods.base import MethodNeeds, MethodOutput, full_precision
from levyjepa.methods.block_masks import (
    BlockMasks,
    check_law,
    mask_generator,
    sample_block_masks,
    size_generator,
)
from levyjepa.methods.masked_jepa import MaskedJEPA, pair


@METHODS.register("ijepa", runtime=("encoder", "seed"))
class IJEPA(MaskedJEPA):
    """I-JEPA on an encoder with a masked forward (see the module docstring).

    Args:
        encoder: The built encoder (given by the runner; the EMA teacher starts as its copy).
        seed: The run's seed (given by the runner; masks are drawn from ``(seed, step, rank)``).
        teacher: ``ema`` or ``none``.
        momentum: EMA momentum ``[start, end]`` over the schedule (``teacher: ema``).
        predictor_width: The predictor's width.
        predictor_depth: Its blocks.
        predictor_heads: Its attention heads.
        targets: Target blocks per image ``M``.
        target_scale: Area range of a target block (fraction of the grid).
        target_aspect: Aspect-ratio range ``h / w`` of a target block.
        context_scale: Area range of the context block (aspect 1).
        mask_law: ``reference`` (default; I-JEPA's collator: one random number for a block's
            scale and aspect, sizes shared by every process, blocks never in the last row or
            column, contexts cut to the batch's smallest in raster order) or ``levyjepa``
            (the earlier law: independent scale and aspect, every position, random-subset
            cuts); see :mod:`levyjepa.methods.block_masks`.
        min_keep: Context patches an image must keep: more than this many (``reference``, the
            collator's test) or at least this many (``levyjepa``).
        lamb: SIGReg's weight in ``[0, 1]`` (when ``sigreg`` is set).
        sigreg: SIGReg section (``{name: sigreg, slices: 256}``): required with
            ``teacher: none``, optional with ``ema``.
        sigreg_proj_hidden: Hidden width of the projector SIGReg reads (built with ``sigreg``).
        sigreg_proj_dim: Its output width ``K``.
    """

    needs = MethodNeeds(min_views=1, masked_forward=True, proj=False, pool="mean")
    outputs = ("emb", "tokens_proj", "pred_field")

    def __init__(
        self,
        *,
        encoder: nn.Module,
        seed: int = 0,
        teacher: str = "ema",
        momentum: Sequence[float] = (0.996, 1.0),
        predictor_width: int = 192,
        predictor_depth: int = 6,
        predictor_heads: int = 6,
        targets: int = 4,
        target_scale: Sequence[float] = (0.15, 0.2),
        target_aspect: Sequence[float] = (0.75, 1.5),
        context_scale: Sequence[float] = (0.85, 1.0),
        mask_law: str = "reference",
        min_keep: int = 10,
        lamb: float = 0.02,
        sigreg: Optional[Mapping[str, Any]] = None,
        sigreg_proj_hidden: int = 256,
        sigreg_proj_dim: int = 16,
    ) -> None:
        check_positive_int("targets", targets)
        masks = dict(law=check_law(mask_law), targets=targets,
                     target_scale=pair("target_scale", target_scale),
                     target_aspect=pair("target_aspect", target_aspect),
                     context_scale=pair("context_scale", context_scale), min_keep=int(min_keep))
        super().__init__(encoder=encoder, seed=seed, teacher=teacher, momentum=momentum,
                         predictor_width=predictor_width, predictor_depth=predictor_depth,
                         predictor_heads=predictor_heads, lamb=lamb, sigreg=sigreg,
                         sigreg_proj_hidden=sigreg_proj_hidden, sigreg_proj_dim=sigreg_proj_dim)
        self.masks = masks

    def draw_masks(self, grid: tuple[int, int], images: int, *, step: int) -> BlockMasks:
        """This process's masks of step ``step`` (CPU): positions from ``(seed, step, rank)``;
        with ``mask_law: reference`` the block sizes from ``(seed, step)``, shared by every
        process as in I-JEPA's collator."""
        generator = mask_generator(seed=self.seed, step=step, rank=rank())
        sizes = (size_generator(seed=self.seed, step=step) if self.masks["law"] == "reference"
                 else None)
        return sample_block_masks(grid, images, generator=generator, sizes=sizes, **self.masks)

    def forward(self, encoder: nn.Module, views: Sequence[torch.Tensor], *,
                step: int) -> MethodOutput:
        """Terms ``pred_loss`` (and ``sigreg``) and ``loss`` of a batch of global views."""
        images = views[0].flatten(0, 1)  # (B, C, H, W), row n*V + v
        grid = encoder.grid_of(images.shape[-2:])
        masks = self.draw_masks(grid, images.shape[0], step=step)
        context_idx = masks.context.to(images.device)
        target_idx = masks.targets.to(images.device)
        field, own_field = self.fields(encoder, images)
        width = field.shape[-1]
        target = F.layer_norm(field.flatten(1, 2), (width,))  # (B, H'W', D)
        flat_idx = target_idx.flatten(1)
        target = target.gather(1, flat_idx.unsqueeze(-1).expand(-1, -1, width))
        target = target.unflatten(1, target_idx.shape[1:])  # (B, M, T, D)
        context = encoder.forward_masked(images, context_idx)  # (B, K, D)
        pred = self.predictor(context, context_idx, target_idx, grid)  # (B, M, T, D)
        with full_precision(pred):
            pred_loss = F.smooth_l1_loss(pred.float(), target.float())
        terms = self.terms_of(pred_loss, [context.float().mean(1), pred.float().mean((1, 2))],
                              step=step)
        side = block_side_of(masks.targets, grid)
        outputs = {"emb": field.mean((1, 2)),
                   "pred_field": pred.flatten(0, 1).unflatten(1, side)}
        if encoder.tokens_proj is not None:  # then own_field was computed above
            outputs["tokens_proj"] = encoder.tokens_proj(own_field)
        return MethodOutput(terms=terms, outputs=outputs)

    def extra_repr(self) -> str:
        kind = "ema" if self.teacher is not None else "none"
        return (f"teacher={kind}, momentum={list(self.momentum)}, "
                f"mask_law={self.masks['law']}, lamb={self.lamb:g}")


def block_side_of(target_idx: torch.Tensor, grid: tuple[int, int]) -> tuple[int, int]:
    """``(h, w)`` of the target blocks (shared by the batch) from their sorted raster indices."""
    first, last = target_idx[0, 0, 0], target_idx[0, 0, -1]
    h = int(last // grid[1] - first // grid[1]) + 1
    return h, target_idx.shape[-1] // h
