"""Loading an exported encoder (:mod:`levyjepa.export` writes it): ``encoder.safetensors`` and
``encoder.yaml``, nothing else of the run needed. The ``encoder`` section's ``pretrained`` keys
(where the run's training started) are ignored: the weights are the export's."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf
from safetensors.torch import load_file
from torch import nn

from levyjepa.config.pretrained_keys import split_pretrained
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
    try:
        cfg = OmegaConf.to_container(OmegaConf.load(config))
    except Exception as err:  # YAML errors come in several exception types
        raise ConfigError(f"{config}: not readable ({_first_line(err)})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("encoder"), dict):
        raise ConfigError(f"{config}: no 'encoder' section")
    load_plugins(cfg.get("plugins", []))
    encoder = ENCODERS.build(split_pretrained(cfg["encoder"])[0], where=f"{config}: encoder",
                             with_tokens_proj=bool(cfg.get("with_tokens_proj", True)),
                             **({} if cfg.get("with_proj", True) else {"with_proj": False}))
    try:
        state = load_file(str(weights), device=device)
    except Exception as err:  # a truncated or corrupt file: safetensors raises several kinds
        raise ConfigError(f"{weights}: not readable ({_first_line(err)}); a truncated or "
                          "corrupt file?") from None
    load_every_key(encoder, state, mismatch=f"{weights}: does not match {config}")
    return encoder.to(device).eval()


def load_every_key(encoder: nn.Module, state: dict, *, mismatch: str,
                   counts: bool = False) -> None:
    """Load ``state`` into ``encoder``, every key matching in name and shape.

    Args:
        encoder: The encoder.
        state: Its weights.
        mismatch: The start of the one-line error (``"FILE: does not match CONFIG"``).
        counts: Also say how many keys are missing and unexpected.

    Raises:
        ConfigError: ``"<mismatch> (<first shape mismatch>)"`` or ``"<mismatch> (missing key
            'k')"`` / ``"(unexpected key 'k')"``.
    """
    try:
        missing, unexpected = encoder.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a shape mismatch
        lines = [x.strip() for x in str(err).splitlines() if "mismatch" in x]
        raise ConfigError(f"{mismatch} ({lines[0] if lines else 'shapes differ'})") from None
    if missing or unexpected:
        bad = (missing or unexpected)[0]
        tally = f"; {len(missing)} missing, {len(unexpected)} unexpected" if counts else ""
        raise ConfigError(f"{mismatch} ({'missing' if missing else 'unexpected'} key "
                          f"'{bad}'{tally})")


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
