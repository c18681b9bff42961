"""Any timm image model as an encoder with a token field: ViTs and their kin, and ConvNets.

The field the Lévy priors read is what the backbone's last layers see of the image, laid out on
a grid:

- a Vision Transformer (ViT, DeiT, EVA, ...; A. Dosovitskiy et al., ICLR 2021): its patch tokens
  after the final norm, prefix tokens (class, registers, distillation) dropped, ``(B, H/p, W/p,
  D)``; the position embeddings follow the input size (timm's ``dynamic_img_size``);
- a ConvNet (ResNet, ConvNeXt, EfficientNet, RegNet, ...): a stage's feature map ``(B, h, w,
  C)``, by default the backbone's final one (what timm's classifier head pools), ``h = ceil(H /
  s)`` for the backbone's total stride ``s`` (32 for the usual ImageNet ConvNets; 8 with
  ``cifar_stem``).

``emb`` pools the field: the seed's attention pool (``pool: attention``, the default, as the
``vit`` encoder's) or its mean (``pool: mean``, timm's global average pooling). No weights are
ever downloaded: ``encoder.pretrained: PATH`` loads a local file (docs/encoders.md).
"""

from __future__ import annotations

import difflib
from typing import Any, Optional

import timm
import torch
from timm.models.vision_transformer import VisionTransformer

from levyjepa.core.registry import ENCODERS
from levyjepa.encoders.cifar_stem import apply_cifar_stem
from levyjepa.encoders.field_encoder import FieldEncoder, masked_vit_tokens

# timm model families whose constructors take img_size and dynamic_img_size (a patch field)
SIZED_FAMILIES = ("vision_transformer", "deit", "eva")


def timm_family(arch: str) -> str:
    """The timm module an architecture comes from (``resnet``, ``vision_transformer``, ...)."""
    return timm.models.model_entrypoint(arch).__module__.rpartition(".")[2]


@ENCODERS.register("timm", runtime=("with_tokens_proj", "with_proj"))
class TimmEncoder(FieldEncoder):
    """A timm image model (never downloaded) with pooling and projector heads.

    Args:
        arch: timm model name (``resnet18``, ``convnext_atto``, ``vit_small_patch16_224``, ...).
        img_size: Input side in pixels at training (sizes the attention pool's position
            embedding; a ViT's too).
        in_chans: Input channels.
        model_args: More keyword arguments of ``timm.create_model`` (``{patch_size: 4, depth:
            2}`` for a tiny ViT, ``{layers: [1, 1, 1, 1], channels: [32, 64, 128, 256]}`` for
            a small ResNet).
        stage: The feature stage whose map is the field (timm's ``feature_info`` index,
            negative from the end); the layers after it are removed. ``None``: the backbone's
            final features.
        cifar_stem: ConvNets: a 3x3 stride-1 first convolution and no stem max-pool, for 32 px
            inputs (:mod:`levyjepa.encoders.cifar_stem`).
        drop_path: Stochastic depth rate of the backbone (models that have it).
        emb_dim: Width of ``emb`` with ``pool: attention`` (``None``: the field's width); with
            ``pool: mean`` it is the field's width.
        pool: ``attention`` (the seed's attention pool, as the ``vit`` encoder's) or ``mean``
            (timm's global average pooling; I-JEPA's readout).
        pool_heads: Heads of the attention pool (must divide the field's width).
        proj_hidden: Hidden width of both projectors.
        tokens_proj_hidden: Hidden width of the token projector alone (``None``: proj_hidden).
        proj_dim: Output width ``K`` of both projectors.
        with_tokens_proj: Build the token projector (set by the runner).
        with_proj: Build the pooled projector (set by the runner).
    """

    def __init__(
        self,
        *,
        arch: str = "resnet18",
        img_size: int = 224,
        in_chans: int = 3,
        model_args: Optional[dict[str, Any]] = None,
        stage: Optional[int] = None,
        cifar_stem: bool = False,
        drop_path: float = 0.0,
        emb_dim: Optional[int] = None,
        pool: str = "attention",
        pool_heads: int = 8,
        proj_hidden: int = 2048,
        tokens_proj_hidden: Optional[int] = None,
        proj_dim: int = 16,
        with_tokens_proj: bool = True,
        with_proj: bool = True,
    ) -> None:
        super().__init__()
        if not timm.is_model(arch):
            close = difflib.get_close_matches(arch, timm.list_models(), n=3)
            raise ValueError(f"unknown timm model '{arch}'"
                             + (f"; closest: {', '.join(close)}" if close else ""))
        if img_size < 1:
            raise ValueError(f"img_size must be >= 1, got {img_size}")
        self.arch, self.img_size = arch, img_size
        family = timm_family(arch)
        kwargs: dict[str, Any] = dict(pretrained=False, num_classes=0, in_chans=in_chans,
                                      drop_path_rate=drop_path)
        if family in SIZED_FAMILIES:
            kwargs.update(img_size=img_size, dynamic_img_size=True)
        for key in model_args or {}:
            if key in ("pretrained", "num_classes", "pretrained_cfg_overlay"):
                raise ValueError(f"model_args.{key} is not settable (weights come from "
                                 "encoder.pretrained: a local file)")
        kwargs.update(model_args or {})
        try:
            self.backbone = timm.create_model(arch, **kwargs)
        except TypeError as err:  # a keyword this model does not take
            raise ValueError(f"timm.create_model('{arch}') refused its arguments: {err}"
                             ) from err
        self.model_args = {k: v for k, v in kwargs.items() if k not in ("pretrained",)}
        self.is_vit = hasattr(self.backbone, "patch_embed") and hasattr(
            self.backbone, "num_prefix_tokens")
        if cifar_stem:
            if self.is_vit:
                raise ValueError("cifar_stem is for ConvNets; a ViT's field is set by its patch "
                                 "size (model_args.patch_size)")
            apply_cifar_stem(self.backbone)
        self.cifar_stem = cifar_stem
        self.stage = None
        if stage is not None:
            stages = len(self.backbone.feature_info)
            if not -stages <= stage < stages:
                raise ValueError(f"stage={stage}: {arch} has {stages} feature stages "
                                 f"(0..{stages - 1}, or negative from the end)")
            self.stage = stage % stages
            self.backbone.prune_intermediate_layers(indices=[self.stage], prune_head=True,
                                                    prune_norm=True)
        field = self._probe_field(in_chans)
        width = int(field.shape[-1])
        grid = (int(field.shape[1]), int(field.shape[2]))
        self.patch_size = img_size // grid[1] if img_size % grid[1] == 0 else None
        if pool == "mean" and emb_dim is not None and emb_dim != width:
            raise ValueError(f"emb_dim={emb_dim} must be the field's width {width} with "
                             "pool: mean (or leave it out)")
        self.build_heads(width=width, grid=grid, emb_dim=emb_dim or width, pool=pool,
                         pool_heads=pool_heads, proj_hidden=proj_hidden,
                         tokens_proj_hidden=tokens_proj_hidden, proj_dim=proj_dim,
                         with_proj=with_proj, with_tokens_proj=with_tokens_proj)

    @property
    def has_masked_forward(self) -> bool:
        """Whether :meth:`forward_masked` works: a timm ``VisionTransformer`` (ViT, DeiT) with
        its final features as the field."""
        return isinstance(self.backbone, VisionTransformer) and self.stage is None

    @property
    def timm_exportable(self) -> bool:
        """Whether ``timm.create_model(arch, **model_args)`` rebuilds this backbone (no CIFAR
        stem, no stage cut off)."""
        return not self.cifar_stem and self.stage is None

    def _probe_field(self, in_chans: int) -> torch.Tensor:
        """The field of one blank image at ``img_size`` (eval mode, no gradient, so no random
        number and no BatchNorm statistic is touched)."""
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad():
                field = self.backbone_field(torch.zeros(1, in_chans, self.img_size,
                                                        self.img_size))
        except (AssertionError, RuntimeError) as err:  # timm's own size checks
            raise ValueError(f"{self.arch} cannot encode a {self.img_size} px image: "
                             f"{str(err).splitlines()[0]}") from err
        finally:
            self.backbone.train(was_training)
        if field.shape[1] < 1 or field.shape[2] < 1:
            raise ValueError(f"{self.arch} leaves no field of a {self.img_size} px image")
        return field

    def grid_of(self, size: tuple[int, int]) -> tuple[int, int]:
        """The field's grid for ``(H, W)`` inputs (``self.grid`` at ``img_size``)."""
        if self.is_vit and self.stage is None:
            patch = self.backbone.patch_embed.patch_size
            return int(size[0]) // patch[0], int(size[1]) // patch[1]
        stride = self.img_size / self.grid[0]
        return -(-int(size[0]) // int(stride)), -(-int(size[1]) // int(stride))

    def backbone_field(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` images to the field ``(B, h, w, D)`` of the backbone (no heads)."""
        bb = self.backbone
        if self.stage is not None:
            (feats,) = bb.forward_intermediates(images, indices=[self.stage],
                                                intermediates_only=True)
            return feats.permute(0, 2, 3, 1)  # timm gives intermediates as NCHW
        feats = bb.forward_features(images)
        if feats.dim() == 3:  # (B, prefix + h*w, D) tokens
            grid = self.grid_of(images.shape[-2:])
            return feats[:, bb.num_prefix_tokens:].unflatten(1, grid)
        if getattr(bb, "output_fmt", "NCHW") == "NHWC":
            return feats
        return feats.permute(0, 2, 3, 1)

    def forward_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The field ``(B, h, w, D)`` of ``(B, C, H, W)`` images (see the module docstring)."""
        return self.backbone_field(images)

    def forward_masked(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """A ViT's last-layer tokens of the kept patches only (I-JEPA's context encoder; see
        :func:`levyjepa.encoders.field_encoder.masked_vit_tokens`).

        Raises:
            ValueError: for a backbone without a masked forward (:attr:`has_masked_forward`).
        """
        if not self.has_masked_forward:
            raise ValueError(f"{self.arch} has no masked forward (a ConvNet's field has no "
                             "tokens to drop)")
        return masked_vit_tokens(self.backbone, images, keep)
