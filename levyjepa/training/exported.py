"""Loading an exported encoder (:mod:`levyjepa.export` writes it): ``encoder.safetensors`` and
``encoder.yaml``, nothing else of the run needed."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf
from safetensors.torch import load_file
from torch import nn

from levyjepa.core.errors import ConfigError

WEIGHTS_NAME = "encoder.safetensors"
CONFIG_NAME = "encoder.yaml"


def load_encoder(path: str | Path, *, device: str = "cpu") -> nn.Module:
    """Rebuild an exported encoder, in eval mode.

    Args:
        path: The export folder, or its ``encoder.safetensors`` (``encoder.yaml`` beside it).
        device: Where to put the weights.

    Returns:
        The encoder: ``enc(views)`` maps ``(N, V, C, H, W)`` images (or ``(N, V, C, T, H, W)``
        clips) to an :class:`~levyjepa.encoders.output.EncoderOutput`.

    Raises:
        ConfigError: if a file is missing or does not match the config.
    """
    from levyjepa.config.plugins import load_plugins
    from levyjepa.core.registry import ENCODERS

    path = Path(path)
    folder = path.parent if path.suffix == ".safetensors" else path
    weights, config = folder / WEIGHTS_NAME, folder / CONFIG_NAME
    for needed in (weights, config):
        if not needed.is_file():
            raise ConfigError(f"{needed}: not found (write it with python -m levyjepa.export)")
    cfg = OmegaConf.to_container(OmegaConf.load(config))
    if not isinstance(cfg, dict) or "encoder" not in cfg:
        raise ConfigError(f"{config}: no 'encoder' section")
    load_plugins(cfg.get("plugins", []))
    encoder = ENCODERS.build(cfg["encoder"], where=f"{config}: encoder",
                             with_tokens_proj=bool(cfg.get("with_tokens_proj", True)),
                             **({} if cfg.get("with_proj", True) else {"with_proj": False}))
    missing, unexpected = encoder.load_state_dict(load_file(str(weights), device=device),
                                                  strict=False)
    if missing or unexpected:
        bad = (missing or unexpected)[0]
        raise ConfigError(f"{weights}: does not match {config} "
                          f"({'missing' if missing else 'unexpected'} key '{bad}')")
    return encoder.to(device).eval()
