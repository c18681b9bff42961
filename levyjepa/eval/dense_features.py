"""Frozen patch-token fields of images and clips, and the raw-pixel baseline's fields.

The dense protocols read the encoder's last-layer ``tokens`` (or ``tokens_proj``, the projected
field the Lévy priors see) as a feature field: ``(h, w, D)`` per image, ``(T, h, w, D)`` per
clip. An image encoder sees a clip frame by frame. A video encoder sees the whole clip (its
length must be the encoder's ``num_frames``); its token field has one time step per tubelet, so a
clip's field is returned at the first frame of every tubelet, with those frame indices.
"""

from __future__ import annotations

import torch
from torch import nn

from levyjepa.data.views.transforms import IMAGENET_MEAN, IMAGENET_STD

FEATURES = ("tokens", "tokens_proj")
"""Which field of :class:`levyjepa.encoders.output.EncoderOutput` a dense probe reads."""


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., 3, H, W)`` to the float input of the encoders (ImageNet statistics)."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (frames.float() / 255 - mean) / std


def _field(out, which: str) -> torch.Tensor:
    field = out.tokens if which == "tokens" else out.tokens_proj
    if field is None:
        raise ValueError("features=tokens_proj but the encoder has no token projector")
    return field.float()


def is_video_encoder(encoder: nn.Module) -> bool:
    """Whether ``encoder`` takes clips ``(N, V, C, T, H, W)`` (it has a 3D token grid)."""
    return len(getattr(encoder, "grid", ())) == 3


@torch.no_grad()
def image_fields(encoder: nn.Module, images: torch.Tensor, *, which: str = "tokens",
                 batch_size: int = 64, device: torch.device | str = "cpu") -> torch.Tensor:
    """Token fields of images.

    A video encoder sees each image as a still clip of ``num_frames`` frames; its field is
    averaged over time.

    Args:
        encoder: The frozen encoder (put in eval mode here).
        images: uint8 ``(n, 3, H, W)``.
        which: ``tokens`` or ``tokens_proj``.
        batch_size: Images per forward.
        device: Where to run the encoder.

    Returns:
        float32 ``(n, h, w, D)`` on CPU.
    """
    if which not in FEATURES:
        raise ValueError(f"features must be one of {', '.join(FEATURES)}, got {which!r}")
    encoder.eval()
    video = is_video_encoder(encoder)
    out = []
    for start in range(0, len(images), batch_size):
        x = normalise(images[start:start + batch_size]).to(device)
        if video:
            x = x.unsqueeze(2).expand(-1, -1, _frames_of(encoder), -1, -1)
        field = _field(encoder(x.unsqueeze(1)), which)
        out.append((field.mean(dim=1) if video else field).cpu())
    return torch.cat(out)


@torch.no_grad()
def clip_field(encoder: nn.Module, frames: torch.Tensor, *, which: str = "tokens",
               batch_size: int = 64, device: torch.device | str = "cpu"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token field of one clip, and the frames it describes.

    Args:
        encoder: The frozen encoder.
        frames: uint8 ``(T, H, W, 3)``.
        which: ``tokens`` or ``tokens_proj``.
        batch_size: Frames per forward (image encoders).
        device: Where to run the encoder.

    Returns:
        float32 ``(T_f, h, w, D)`` on CPU and the int64 indices ``(T_f,)`` of the frames its
        time steps stand for: every frame for an image encoder, the first frame of every
        tubelet for a video encoder.
    """
    chw = torch.as_tensor(frames).permute(0, 3, 1, 2)
    if not is_video_encoder(encoder):
        field = image_fields(encoder, chw, which=which, batch_size=batch_size, device=device)
        return field, torch.arange(len(chw))
    if which not in FEATURES:
        raise ValueError(f"features must be one of {', '.join(FEATURES)}, got {which!r}")
    expected = _frames_of(encoder)
    if len(chw) != expected:
        raise ValueError(f"the video encoder takes clips of {expected} frames, got {len(chw)}")
    encoder.eval()
    x = normalise(chw).transpose(0, 1)[None, None].to(device)  # (1, 1, 3, T, H, W)
    field = _field(encoder(x), which)[0].cpu()
    step = expected // field.shape[0]
    return field, torch.arange(field.shape[0]) * step


def pixel_field(images: torch.Tensor, *, patch_size: int) -> torch.Tensor:
    """The raw-pixels baseline: each ``p x p`` patch's RGB values in ``[0, 1]`` as its feature.

    Args:
        images: uint8 ``(n, 3, H, W)``.
        patch_size: Patch side ``p`` (divides ``H`` and ``W``).

    Returns:
        float32 ``(n, H/p, W/p, 3*p*p)``.
    """
    from levyjepa.eval.segmentation_probe import raw_pixel_features

    return raw_pixel_features(images, patch_size=patch_size)


def patch_size_of(field: torch.Tensor, image_side: int) -> int:
    """The patch side that maps ``image_side`` pixels onto the field's grid (exactly)."""
    h = field.shape[-3]
    if image_side % h:
        raise ValueError(f"a {h}-patch grid does not tile {image_side} pixels")
    return image_side // h


def _frames_of(encoder: nn.Module) -> int:
    """Frames per clip of a video encoder (its tubelet embedding's input length)."""
    return int(encoder.patch_embed.input_size[1])
