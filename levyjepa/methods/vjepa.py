"""``vjepa``: masked latent prediction on clips, tubes through the whole clip, an L1 loss.

A. Bardes, Q. Garrido, J. Ponce, X. Chen, M. Rabbat, Y. LeCun, M. Assran, N. Ballas,
"Revisiting Feature Prediction for Learning Visual Representations from Video", 2024 (V-JEPA).
For each clip (each view of the video source is one clip; V-JEPA uses one):

1. two 3-D multi-block masks on the tubelet grid (:mod:`levyjepa.methods.tube_masks`), by
   default V-JEPA's "short-range" (8 blocks of spatial scale 0.15) and "long-range" (2 blocks of
   0.7), aspect 0.75-1.5, each block a tube through the whole clip; drawn from ``(seed, step,
   rank)`` by the law ``mask_law``: ``reference`` (the default: the authors' collator, so that
   ``vjepa`` is the published method) or ``levyjepa`` (this library's earlier law, which the
   committed recipes with measured results pin; docs/masks.md);
2. for each mask, the context encoder (the trained encoder) runs on the tubelets outside it only
   (:meth:`levyjepa.encoders.video_vit.VideoViTEncoder.forward_masked`);
3. the targets are the teacher's last-layer tokens of the *full* clip, layer-normalised over the
   width without affine parameters, at the masked tubelets;
4. the predictor (:class:`levyjepa.methods.jepa_predictor.JEPAPredictor` on the 3-D grid, with
   mask tokens and the 3-D sine-cosine embedding) fills the masked tubelets in from the context,
   and ``pred_loss`` is V-JEPA's ``mean |pred - target| ** loss_exp / loss_exp`` (``loss_exp``
   1: L1), averaged over the masks.

``teacher: ema``: the teacher is an EMA of the encoder (momentum 0.998 -> 1.0 here; V-JEPA uses
0.998 and above), without gradient; ``loss = pred_loss``; the teacher is the evaluated encoder.
``teacher: none`` (LeJEPA's proposal, Balestriero & LeCun, arXiv:2511.08544): the targets are
the encoder's own full-clip tokens, with gradient, and SIGReg on a projector of the mean-pooled
context and prediction of every mask (``(2 * masks, B, K)``) prevents collapse; ``loss = (1 -
lamb) * pred_loss + lamb * sigreg``.

Outputs for the recipe's priors: ``emb`` ``(B, D)`` (the evaluated encoder's mean-pooled
full-clip tokens; read by the online probe) and ``tokens_proj`` ``(B, T', H', W', K)`` (the
encoder's token projector on its full-clip field, the field a ``levy3d`` prior reads; only when a
prior reads it: with ``teacher: ema`` it costs one more forward of the encoder on the full clip).
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
from levyjepa.methods.block_masks import check_law, mask_generator, size_generator
from levyjepa.methods.masked_jepa import MaskedJEPA, pair
from levyjepa.methods.tube_masks import TubeMasks, sample_tube_masks

DEFAULT_MASKS = ({"blocks": 8, "spatial_scale": [0.15, 0.15]},
                 {"blocks": 2, "spatial_scale": [0.7, 0.7]})
"""V-JEPA's two masks per clip: short-range and long-range multi-block."""
_MASK_KEYS = ("blocks", "spatial_scale", "temporal_scale", "aspect")


def _mask_settings(masks: Sequence[Mapping[str, Any]], aspect: tuple[float, float],
                   min_keep: Optional[int]) -> list[dict[str, Any]]:
    if not masks:
        raise ValueError("masks must list at least one mask ({blocks, spatial_scale})")
    out = []
    for i, mask in enumerate(masks):
        if not isinstance(mask, Mapping) or set(mask) - set(_MASK_KEYS):
            raise ValueError(f"masks[{i}] must be a mapping of {', '.join(_MASK_KEYS)}, got "
                             f"{mask!r}")
        blocks = mask.get("blocks", 8)
        check_positive_int(f"masks[{i}].blocks", blocks)
        out.append({"blocks": blocks,
                    "spatial_scale": pair(f"masks[{i}].spatial_scale",
                                           mask.get("spatial_scale", (0.15, 0.15))),
                    "temporal_scale": pair(f"masks[{i}].temporal_scale",
                                            mask.get("temporal_scale", (1.0, 1.0))),
                    "aspect": pair(f"masks[{i}].aspect", mask.get("aspect", aspect)),
                    "min_keep": min_keep})
    return out


@METHODS.register("vjepa", runtime=("encoder", "seed"))
class VJEPA(MaskedJEPA):
    """V-JEPA on a video encoder with a masked forward (see the module docstring).

    Args:
        encoder: The built encoder (given by the runner; the EMA teacher starts as its copy).
        seed: The run's seed (given by the runner; masks are drawn from ``(seed, step, rank)``).
        teacher: ``ema`` or ``none``.
        momentum: EMA momentum ``[start, end]`` over the schedule (``teacher: ema``).
        predictor_width: The predictor's width.
        predictor_depth: Its blocks.
        predictor_heads: Its attention heads.
        masks: The masks drawn per clip, each ``{blocks, spatial_scale, temporal_scale,
            aspect}`` (defaults: V-JEPA's short-range and long-range masks, tubes through the
            whole clip).
        aspect: Aspect-ratio range ``h / w`` of every mask's blocks (unless a mask sets its own).
        mask_law: ``reference`` (default; V-JEPA's collator: one block size per step shared by
            both masks and every process, sides up to the grid's, floored area, the batch cut
            to its smallest counts in raster order) or ``levyjepa`` (the earlier law: sides up
            to the grid's minus 1, random-subset cuts); see
            :mod:`levyjepa.methods.tube_masks`.
        min_keep: Fewest context tubelets a clip may keep (``None``: the law's, 1 for
            ``reference``, whose collator only redraws an empty context, and 10 for
            ``levyjepa``).
        loss_exp: Exponent of V-JEPA's loss ``mean |pred - target| ** p / p`` (1: L1).
        lamb: SIGReg's weight in ``[0, 1]`` (when ``sigreg`` is set).
        sigreg: SIGReg section: required with ``teacher: none``, optional with ``ema``.
        sigreg_proj_hidden: Hidden width of the projector SIGReg reads.
        sigreg_proj_dim: Its output width ``K``.
    """

    needs = MethodNeeds(min_views=1, masked_forward=True, proj=False, pool="mean")
    outputs = ("emb", "tokens_proj")

    def __init__(
        self,
        *,
        encoder: nn.Module,
        seed: int = 0,
        teacher: str = "ema",
        momentum: Sequence[float] = (0.998, 1.0),
        predictor_width: int = 192,
        predictor_depth: int = 6,
        predictor_heads: int = 6,
        masks: Sequence[Mapping[str, Any]] = DEFAULT_MASKS,
        aspect: Sequence[float] = (0.75, 1.5),
        mask_law: str = "reference",
        min_keep: Optional[int] = None,
        loss_exp: float = 1.0,
        lamb: float = 0.02,
        sigreg: Optional[Mapping[str, Any]] = None,
        sigreg_proj_hidden: int = 256,
        sigreg_proj_dim: int = 16,
    ) -> None:
        if not loss_exp > 0:
            raise ValueError(f"loss_exp must be > 0, got {loss_exp}")
        if getattr(encoder, "grid", None) is None or len(encoder.grid) != 3:
            raise ValueError("vjepa needs a video encoder with a (T', H', W') tubelet grid "
                             "(encoder: video_vit)")
        check_law(mask_law)
        masks = _mask_settings(masks, pair("aspect", aspect),
                               None if min_keep is None else int(min_keep))
        super().__init__(encoder=encoder, seed=seed, teacher=teacher, momentum=momentum,
                         predictor_width=predictor_width, predictor_depth=predictor_depth,
                         predictor_heads=predictor_heads, lamb=lamb, sigreg=sigreg,
                         sigreg_proj_hidden=sigreg_proj_hidden, sigreg_proj_dim=sigreg_proj_dim)
        self.masks, self.loss_exp, self.mask_law = masks, float(loss_exp), mask_law

    def draw_masks(self, grid: tuple[int, int, int], clips: int, *,
                   step: int) -> list[TubeMasks]:
        """This process's masks of step ``step`` (CPU): positions from ``(seed, step, rank)``;
        with ``mask_law: reference`` every mask's block size from the same ``(seed, step)``
        numbers (V-JEPA seeds each mask's size generator with the iteration counter)."""
        generator = mask_generator(seed=self.seed, step=step, rank=rank())
        if self.mask_law == "levyjepa":
            return [sample_tube_masks(grid, clips, generator=generator, law="levyjepa", **m)
                    for m in self.masks]
        return [sample_tube_masks(grid, clips, generator=generator, law="reference",
                                  sizes=size_generator(seed=self.seed, step=step), **m)
                for m in self.masks]

    def forward(self, encoder: nn.Module, views: Sequence[torch.Tensor], *,
                step: int) -> MethodOutput:
        """Terms ``pred_loss`` (and ``sigreg``) and ``loss`` of a batch of clips."""
        clips = views[0].flatten(0, 1)  # (B, C, T, H, W), row n*V + v
        grid = encoder.grid_of(clips.shape[-2:])
        field, own_field = self.fields(encoder, clips)
        width = field.shape[-1]
        target_all = F.layer_norm(field.flatten(1, 3), (width,))  # (B, T'H'W', D)
        losses, pooled = [], []
        for masks in self.draw_masks(grid, clips.shape[0], step=step):
            context_idx = masks.context.to(clips.device)
            target_idx = masks.targets.to(clips.device)
            target = target_all.gather(1, target_idx.unsqueeze(-1).expand(-1, -1, width))
            context = encoder.forward_masked(clips, context_idx)  # (B, K, D)
            pred = self.predictor(context, context_idx, target_idx[:, None], grid)[:, 0]
            with full_precision(pred):
                gap = (pred.float() - target.float()).abs()
                losses.append(gap.pow(self.loss_exp).mean() / self.loss_exp)
            pooled += [context.float().mean(1), pred.float().mean(1)]
        terms = self.terms_of(torch.stack(losses).mean(), pooled, step=step)
        outputs = {"emb": field.mean((1, 2, 3))}
        if encoder.tokens_proj is not None:  # then own_field was computed above
            outputs["tokens_proj"] = encoder.tokens_proj(own_field)
        return MethodOutput(terms=terms, outputs=outputs)

    def extra_repr(self) -> str:
        kind = "ema" if self.teacher is not None else "none"
        return (f"teacher={kind}, masks={len(self.masks)}, mask_law={self.mask_law}, "
                f"loss_exp={self.loss_exp:g}, lamb={self.lamb:g}")
