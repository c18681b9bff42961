"""Where ``python -m levyjepa.eval`` takes an encoder from: a run directory, an exported
encoder, or a recipe's ``encoder`` section with weights from a local file.

The third lets a user score a baseline they trust beside their own run: any registered encoder
(``levyjepa.ENCODERS``, plugins included) built as the recipe says, with a state dict read from
``weights=PATH`` (a ``.safetensors`` file, or a ``torch.save`` file holding a state dict, read
with ``weights_only=True``). The state may be the encoder's own (keys as in
``encoder.state_dict()``) or a levyjepa checkpoint's ``model.safetensors`` (keys ``encoder.*``);
every key must match, or one line names the first that does not. The recipe's
``encoder.pretrained`` keys are ignored there: ``weights=`` gives the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from torch import nn

from levyjepa.config.pretrained_keys import split_pretrained
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import ENCODERS
from levyjepa.training.exported import CONFIG_NAME, load_encoder, load_every_key
from levyjepa.training.trained import encoder_state, load_trained

KINDS = ("run", "export", "recipe")


@dataclass
class EncoderSource:
    """An encoder to evaluate and where it came from.

    Attributes:
        encoder: The encoder, in eval mode, on CPU.
        kind: ``run``, ``export`` or ``recipe``.
        path: The run directory, export folder or recipe file.
        run: The :class:`levyjepa.training.trained.TrainedRun` for a run directory, else ``None``.
        weights: The weight file for a recipe (``None`` otherwise).
    """

    encoder: nn.Module
    kind: str
    path: Path
    run: Any = None
    weights: Optional[Path] = None

    @property
    def label(self) -> str:
        """A short name for tables and picture titles."""
        return self.path.stem if self.kind == "recipe" else self.path.name


def source_kind(path: Path) -> str:
    """``run`` (a folder with ``config.yaml``), ``export`` (a folder with ``encoder.yaml``) or
    ``recipe`` (a YAML file).

    Raises:
        ConfigError: naming the path and the three accepted forms.
    """
    if not path.exists():
        raise ConfigError(f"{path}: not found (give a run directory, an exported encoder or a "
                          "recipe file with weights=PATH)")
    if path.is_dir() and (path / "config.yaml").is_file():
        return "run"
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        return "export"
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return "recipe"
    raise ConfigError(f"{path}: not a run directory (config.yaml), an exported encoder "
                      f"({CONFIG_NAME} and encoder.safetensors, from python -m levyjepa.export) "
                      "or a recipe file (.yaml, with weights=PATH)")


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` or ``torch.save`` file.

    Raises:
        ConfigError: if the file is missing or holds no state dict.
    """
    if not path.is_file():
        raise ConfigError(f"weights={path}: file not found")
    try:
        state = (load_file(str(path)) if path.suffix == ".safetensors"
                 else torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # torch and safetensors raise several kinds
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"weights={path}: not a readable state dict: {first}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ConfigError(f"weights={path}: holds no state dict of tensors")
    return state


def encoder_from_recipe(recipe: Path, weights: Path, overrides: Sequence[str] = ()
                        ) -> nn.Module:
    """Build the recipe's encoder and load ``weights`` into it (every key must match)."""
    from levyjepa.config.recipe import load_recipe
    from levyjepa.methods.build import encoder_runtime

    cfg = load_recipe(recipe, list(overrides), pretrained_file=False)  # weights= wins
    encoder = ENCODERS.build(split_pretrained(OmegaConf.to_container(cfg.encoder))[0],
                             where="encoder", **encoder_runtime(cfg))
    state = read_weights(weights)
    if any(k.startswith("encoder.") for k in state):  # a levyjepa checkpoint's model state
        state = encoder_state(state, key="encoder")
    load_every_key(encoder, state, counts=True,
                   mismatch=f"weights={weights}: does not match the encoder of {recipe}")
    return encoder.eval()


def open_encoder(path: str | Path, *, weights: Optional[str | Path] = None,
                 checkpoint: Optional[str] = None, overrides: Sequence[str] = (),
                 untrained: bool = False) -> EncoderSource:
    """The encoder at ``path`` (see the module docstring).

    Args:
        path: A run directory, an export folder, or a recipe file.
        weights: The weight file (a recipe only; required there).
        checkpoint: A checkpoint folder of a run (default: its latest).
        overrides: Dotlist overrides of the run's or the recipe's recipe.
        untrained: A run's freshly initialised encoder instead of its trained one.

    Raises:
        ConfigError: one line naming the path, file or key at fault.
    """
    path = Path(path)
    kind = source_kind(path)
    if kind != "recipe" and weights is not None:
        raise ConfigError(f"weights={weights}: only for a recipe file; {path} is a {kind} "
                          "folder, which holds its own weights")
    if kind != "run" and (checkpoint is not None or untrained):
        raise ConfigError(f"{path}: checkpoint= and untrained= apply to run directories only")
    if kind == "run":
        run = load_trained(path, checkpoint=checkpoint, overrides=overrides, untrained=untrained)
        return EncoderSource(encoder=run.encoder, kind=kind, path=path, run=run)
    if kind == "export":
        if overrides:
            raise ConfigError(f"{path}: an exported encoder takes no recipe overrides "
                              f"({overrides[0]})")
        return EncoderSource(encoder=load_encoder(path), kind=kind, path=path)
    if weights is None:
        raise ConfigError(f"{path}: a recipe names an encoder but not its weights; add "
                          "weights=PATH (.safetensors or a torch.save state dict)")
    return EncoderSource(encoder=encoder_from_recipe(path, Path(weights), overrides), kind=kind,
                         path=path, weights=Path(weights))
