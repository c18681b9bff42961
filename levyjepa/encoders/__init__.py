"""Encoders: views to the output contract of :class:`EncoderOutput`.

May import core and the other component packages (encoders, priors, methods, data); never
diagnostics, config, training, eval, studies or the entry points.

An encoder is an ``nn.Module`` registered in :data:`levyjepa.ENCODERS`. Its constructor takes
keyword arguments only, including ``with_tokens_proj: bool`` (supplied by the runner), and
exposes ``emb_dim`` (the width the probe reads).
"""

from levyjepa.encoders.energy_transformer import EnergyTransformerEncoder
from levyjepa.encoders.field_encoder import FieldEncoder
from levyjepa.encoders.output import EncoderOutput
from levyjepa.encoders.timm_encoder import TimmEncoder
from levyjepa.encoders.video_vit import VideoViTEncoder
from levyjepa.encoders.vit import ViTEncoder

__all__ = ["EncoderOutput", "EnergyTransformerEncoder", "FieldEncoder", "TimmEncoder",
           "VideoViTEncoder", "ViTEncoder"]
