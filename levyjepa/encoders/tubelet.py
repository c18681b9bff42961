"""Tubelet embedding: a clip cut into ``t x p x p`` blocks, each linearly mapped to a token.

ViViT's "tubelet embedding" (A. Arnab et al., "ViViT: A Video Vision Transformer", ICCV 2021),
as used by VideoMAE (Z. Tong et al., NeurIPS 2022) with ``t = 2``, ``p = 16``: a 3D convolution
whose kernel equals its stride, so that every token sees one non-overlapping block of ``t``
frames by ``p x p`` pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from levyjepa.core.arg_checks import check_positive_int


class TubeletEmbed(nn.Module):
    """Clips ``(B, C, T, H, W)`` to a token grid ``(B, T/t, H/p, W/p, D)``.

    Args:
        num_frames: Frames per clip ``T`` (a multiple of ``tubelet_size``).
        img_size: Frame side ``H = W`` (a multiple of ``patch_size``).
        patch_size: Spatial side ``p`` of a tubelet.
        tubelet_size: Temporal length ``t`` of a tubelet.
        in_chans: Input channels ``C``.
        embed_dim: Token width ``D``.

    Raises:
        ValueError: naming the size that does not divide.
    """

    def __init__(self, *, num_frames: int, img_size: int, patch_size: int, tubelet_size: int,
                 in_chans: int, embed_dim: int) -> None:
        super().__init__()
        for name, value in (("num_frames", num_frames), ("img_size", img_size),
                            ("patch_size", patch_size), ("tubelet_size", tubelet_size),
                            ("in_chans", in_chans), ("embed_dim", embed_dim)):
            check_positive_int(name, value)
        if num_frames % tubelet_size:
            raise ValueError(f"num_frames={num_frames} must be a multiple of "
                             f"tubelet_size={tubelet_size}")
        if img_size % patch_size:
            raise ValueError(f"img_size={img_size} must be a multiple of patch_size={patch_size}")
        self.grid: tuple[int, int, int] = (num_frames // tubelet_size, img_size // patch_size,
                                           img_size // patch_size)
        self.input_size = (in_chans, num_frames, img_size, img_size)
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` to ``(B, T', H', W', D)``; frames of another side than
        ``img_size`` are accepted when ``patch_size`` tiles them."""
        c, t = self.input_size[:2]
        patch = self.proj.kernel_size[1]
        if (clips.dim() != 5 or tuple(clips.shape[1:3]) != (c, t)
                or clips.shape[3] % patch or clips.shape[4] % patch):
            want = ", ".join(map(str, self.input_size))
            raise ValueError(f"expected clips (B, C, T, H, W) = (B, {want}) (H, W: multiples "
                             f"of {patch}), got {tuple(clips.shape)}")
        return self.proj(clips).permute(0, 2, 3, 4, 1)
