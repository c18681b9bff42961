"""An encoder as a *feature function*: frames in, a field of patch tokens out.

The benchmark protocols (:mod:`levyjepa.eval.benchmarks`) read any encoder through this one
callable, so a run's encoder, an exported encoder and an encoder built from a recipe with weights
from a file are scored the same way. Inputs of any size whose sides are multiples of the patch
size are accepted: the timm ViT backbones interpolate their position embeddings to the input's
grid (``dynamic_img_size``), so non-square frames and frames larger than the training size work.

Layers (``layers=k``): the last ``k`` blocks' patch tokens, each after the backbone's final norm,
concatenated along channels (DINOv2's "last 4 layers" linear readout with ``k = 4``, M. Oquab et
al., "DINOv2: Learning Robust Visual Features without Supervision", TMLR 2024). ``k = 1`` is the
last layer, the ``tokens`` of :class:`levyjepa.encoders.output.EncoderOutput`.
"""

from __future__ import annotations

import torch
from torch import nn

from levyjepa.data.views.transforms import IMAGENET_MEAN, IMAGENET_STD
from levyjepa.eval.dense_features import is_video_encoder


def patch_size_of(encoder: nn.Module) -> int:
    """The spatial patch side of an encoder's token grid.

    Raises:
        ValueError: if the encoder does not say (no timm backbone, no ``patch_size``).
    """
    backbone = getattr(encoder, "backbone", None)
    size = getattr(getattr(backbone, "patch_embed", None), "patch_size", None)
    if size is None:  # a tubelet embedding: its convolution's spatial kernel
        proj = getattr(getattr(encoder, "patch_embed", None), "proj", None)
        size = getattr(proj, "kernel_size", None) or getattr(encoder, "patch_size", None)
    if size is None:
        raise ValueError(f"{type(encoder).__name__}: cannot tell its patch size")
    return int(size[-1] if isinstance(size, (tuple, list)) else size)


class TokenFeatures:
    """``features(frames)``: float ``(n, 3, H, W)`` frames in ``[0, 1]`` to ``(n, h, w, C)``.

    ``h = H // patch`` and ``w = W // patch``; ``C`` is the token width times ``layers``. The
    frames are normalised with the ImageNet statistics, as in training. A video encoder sees each
    frame as a still clip of its ``num_frames`` frames and its field is averaged over time (the
    last layer only).

    Args:
        encoder: The frozen encoder (put in eval mode here).
        layers: How many of the last blocks to concatenate (``1``: the last layer).
        device: Where to run it.
        batch_size: Frames per forward.

    Attributes:
        patch: The patch side in pixels.
    """

    def __init__(self, encoder: nn.Module, *, layers: int = 1, device: torch.device | str = "cpu",
                 batch_size: int = 16) -> None:
        if not (isinstance(layers, int) and layers >= 1):
            raise ValueError(f"layers must be an integer >= 1, got {layers!r}")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        backbone = getattr(encoder, "backbone", None)
        self.video = is_video_encoder(encoder)
        if layers > 1 and (self.video or not hasattr(backbone, "forward_intermediates")
                           or not getattr(encoder, "is_vit", True)):  # a ConvNet's map
            raise ValueError(f"layers={layers}: {type(encoder).__name__} gives its last layer "
                             "only (layers=1)")
        self.encoder = encoder.eval().to(device)
        self.layers, self.device, self.batch_size = layers, torch.device(device), batch_size
        self.patch = patch_size_of(encoder)

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (n, 3, H, W), got {tuple(frames.shape)}")
        h, w = frames.shape[-2:]
        if h % self.patch or w % self.patch:
            raise ValueError(f"frames of {h}x{w} px: both sides must be multiples of the patch "
                             f"size {self.patch}")
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(3, 1, 1)
        out = []
        for start in range(0, len(frames), self.batch_size):
            x = (frames[start:start + self.batch_size].to(self.device).float() - mean) / std
            out.append(self._field(x).float().cpu())
        return torch.cat(out)

    def _field(self, x: torch.Tensor) -> torch.Tensor:
        grid = (x.shape[-2] // self.patch, x.shape[-1] // self.patch)
        if self.layers > 1:
            backbone = self.encoder.backbone
            blocks = backbone.forward_intermediates(x, indices=self.layers, norm=True,
                                                    output_fmt="NLC", intermediates_only=True)
            prefix = getattr(backbone, "num_prefix_tokens", 0)
            fields = [b[:, -grid[0] * grid[1]:] if prefix and b.shape[1] > grid[0] * grid[1]
                      else b for b in blocks]
            return torch.cat(fields, dim=-1).unflatten(1, grid)
        if hasattr(self.encoder, "forward_tokens") and not self.video:
            return self.encoder.forward_tokens(x)
        if self.video:  # a still clip of the encoder's length
            frames = int(self.encoder.patch_embed.input_size[1])
            clip = x.unsqueeze(2).expand(-1, -1, frames, -1, -1)
            return self.encoder(clip.unsqueeze(1)).tokens.mean(dim=1)
        return self.encoder(x.unsqueeze(1)).tokens


class ClipTokens:
    """``encode(clips)``: float ``(n, T, 3, H, W)`` clips in ``[0, 1]`` to tokens ``(n, L, D)``.

    A video encoder reads the clip whole (``T`` must be its ``num_frames``; ``L = T' H' W'``);
    an image encoder reads every frame and its fields are concatenated (``L = T h w``).

    Args:
        encoder: The frozen encoder.
        device: Where to run it.

    Attributes:
        frames: The clip length a video encoder needs (``None`` for an image encoder).
        size: The encoder's training input side, in pixels.
    """

    def __init__(self, encoder: nn.Module, *, device: torch.device | str = "cpu") -> None:
        self.encoder = encoder.eval().to(device)
        self.device = torch.device(device)
        self.video = is_video_encoder(encoder)
        embed = (encoder.patch_embed if self.video
                 else getattr(encoder.backbone, "patch_embed", None))
        self.frames = int(embed.input_size[1]) if self.video else None
        # a ConvNet (the timm encoder) has no patch embedding: its training side
        size = (embed.input_size[-1] if self.video
                else embed.img_size if embed is not None else encoder.img_size)
        self.size = int(size[-1] if isinstance(size, (tuple, list)) else size)

    @torch.no_grad()
    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() != 5 or clips.shape[2] != 3:
            raise ValueError(f"clips must be (n, T, 3, H, W), got {tuple(clips.shape)}")
        if self.frames is not None and clips.shape[1] != self.frames:
            raise ValueError(f"clips of {clips.shape[1]} frames; the encoder takes "
                             f"{self.frames}")
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(3, 1, 1)
        x = (clips.to(self.device).float() - mean) / std
        n, t = x.shape[:2]
        if self.video:  # (n, 1, 3, T, H, W)
            tokens = self.encoder(x.transpose(1, 2).unsqueeze(1)).tokens
        else:
            tokens = self.encoder.forward_tokens(x.flatten(0, 1)).unflatten(0, (n, t))
        return tokens.reshape(n, -1, tokens.shape[-1]).float()
