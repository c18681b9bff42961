"""Rebuild a trained encoder from a run directory (for evaluation and export).

A run directory (:mod:`levyjepa.training.loop`) holds the resolved recipe ``config.yaml`` and
checkpoints ``checkpoints/step_XXXXXXXX/`` whose ``model.safetensors`` is the state of the
trained :class:`~levyjepa.training.model.Pretrainer` (keys ``encoder.*``, ``method.*`` and
``probe.*``). The encoder is rebuilt from the recipe's ``encoder`` section, with the token
projector exactly when the recipe's method or a prior reads ``tokens_proj`` (and the pooled
projector unless the method never reads it), and given the checkpoint's weights of the encoder the
method evaluates: the trained encoder (``encoder.*``), or I-JEPA's EMA teacher
(``method.teacher.encoder.*``, :meth:`levyjepa.methods.Method.evaluated_key`).

The untrained baseline (``untrained=True``) is the encoder the run started from: the recipe's
random initialisation, or, for a run started from ``encoder.pretrained`` weights, those weights
(:mod:`levyjepa.training.pretrained`), so that "trained against untrained" measures what the run
itself learnt. The file must still be there; the trained encoder never needs it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file
from torch import nn

from levyjepa.config.moved_keys import refuse_moved_keys
from levyjepa.config.plugins import plugin_hint
from levyjepa.config.pretrained_keys import split_pretrained
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import ENCODERS
from levyjepa.methods.attached_priors import AttachedPriors
from levyjepa.methods.build import encoder_runtime, method_class
from levyjepa.training.checkpoint import MODEL_FILE, STATE_FILE, list_checkpoints

__all__ = ["CONFIG_FILE", "MODEL_FILE", "TrainedRun", "encoder_state", "load_trained",
           "resolve_checkpoint"]

CONFIG_FILE = "config.yaml"
# Wrappers that prefix parameter names: DDP ("module.") and torch.compile ("_orig_mod.").
_WRAPPERS = re.compile(r"(^|\.)(module|_orig_mod)\.")


@dataclass
class TrainedRun:
    """A trained encoder and what it was trained with.

    Attributes:
        cfg: The run's recipe (with any overrides given to :func:`load_trained`).
        encoder: The encoder with the checkpoint's weights, in eval mode, on CPU.
        prior: The prior attached to ``tokens_proj`` (``priors.within``), or ``None``.
        with_tokens_proj: Whether the encoder has its token projector.
        with_proj: Whether it has its pooled projector.
        weights_key: Where its weights are in the checkpoint (``encoder``, or
            ``method.teacher.encoder`` for I-JEPA's EMA teacher).
        checkpoint: The checkpoint folder the weights come from.
        step: The training step of that checkpoint.
        pretrained: For the untrained baseline of a run started from ``encoder.pretrained``
            weights, the report of loading them
            (:func:`levyjepa.training.pretrained.load_pretrained`); else ``None``.
    """

    cfg: DictConfig
    encoder: nn.Module
    prior: Optional[nn.Module]
    with_tokens_proj: bool
    with_proj: bool
    weights_key: str
    checkpoint: Path
    step: int
    pretrained: Optional[str] = None


def resolve_checkpoint(run_dir: Path, checkpoint: Optional[str | Path] = None) -> Path:
    """The checkpoint folder to read: ``checkpoint`` if given, else the run's latest.

    Raises:
        ConfigError: if there is no complete checkpoint there.
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        if not (path / STATE_FILE).is_file():
            raise ConfigError(f"checkpoint={checkpoint}: not a complete checkpoint folder "
                              f"(no {STATE_FILE})")
        return path
    found = list_checkpoints(run_dir)
    if not found:
        raise ConfigError(f"{run_dir}: no complete checkpoint in {run_dir / 'checkpoints'}")
    return found[-1]


def encoder_state(model_state: Mapping[str, torch.Tensor], *, key: str = "encoder"
                  ) -> dict[str, torch.Tensor]:
    """An encoder's entries of a saved ``Pretrainer`` state, without wrapper prefixes.

    Args:
        model_state: ``model.safetensors`` of a checkpoint (keys ``encoder.*``, ``method.*``,
            ``probe.*``, possibly with ``module.`` or ``_orig_mod.`` inserted by DDP or
            ``torch.compile``).
        key: The encoder's module path (``encoder``, or ``method.teacher.encoder``).

    Returns:
        That encoder's state dict (keys without the ``<key>.`` prefix).
    """
    prefix = key + "."
    state = {}
    for name, value in model_state.items():
        clean = _WRAPPERS.sub(r"\1", name)
        while _WRAPPERS.search(clean):
            clean = _WRAPPERS.sub(r"\1", clean)
        if clean.startswith(prefix):
            state[clean[len(prefix):]] = value
    return state


def load_trained(
    run_dir: str | Path,
    *,
    checkpoint: Optional[str | Path] = None,
    overrides: Sequence[str] = (),
    untrained: bool = False,
) -> TrainedRun:
    """Rebuild the encoder of a run and load a checkpoint's weights.

    Args:
        run_dir: The run directory.
        checkpoint: A checkpoint folder (default: the run's latest complete checkpoint).
        overrides: Dotlist overrides of the run's recipe (e.g. ``data.root=...``).
        untrained: Keep the freshly initialised weights (seeded by the recipe's ``seed``)
            instead of loading the checkpoint's: the untrained baseline of the same recipe (for
            a run started from ``encoder.pretrained`` weights, those weights: its step 0).

    Raises:
        ConfigError: one line naming the missing file or the mismatching key.
    """
    from levyjepa.config.recipe import load_recipe

    run_dir = Path(run_dir)
    config = run_dir / CONFIG_FILE
    if not config.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    refuse_moved_keys(OmegaConf.load(config), origin=f"{config} was written by an earlier "
                      "levyjepa, whose checkpoints this version does not read; its key")
    try:
        cfg = load_recipe(config, overrides, pretrained_file=False)  # weights come from here
    except ConfigError as err:  # a plugin module importable where the run trained, not here
        hint = plugin_hint(run_dir, str(err))
        if not hint:
            raise
        raise ConfigError(f"{err}; {hint}") from None
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    weights = ckpt / MODEL_FILE
    if not weights.is_file():
        raise ConfigError(f"{ckpt}: no {MODEL_FILE} in the checkpoint")
    prior = AttachedPriors(OmegaConf.to_container(cfg.priors), outputs=method_class(cfg).outputs,
                           method=cfg.method.name).first_on("tokens_proj")
    runtime = encoder_runtime(cfg)
    with_tokens_proj = runtime["with_tokens_proj"]
    with_proj = runtime.get("with_proj", True)
    key = method_class(cfg).evaluated_key(OmegaConf.to_container(cfg.method))
    section, pretrained, strict = split_pretrained(OmegaConf.to_container(cfg.encoder))
    with torch.random.fork_rng(devices=[]):  # the recipe's initial weights; caller's RNG kept
        torch.manual_seed(cfg.seed)
        encoder = ENCODERS.build(section, where="encoder", **runtime)
    found = dict(cfg=cfg, encoder=encoder, prior=prior, with_tokens_proj=with_tokens_proj,
                 with_proj=with_proj, weights_key=key, checkpoint=ckpt)
    if untrained:  # an EMA teacher starts as a copy of the encoder: the same weights
        report = None
        if pretrained is not None:  # the run's step 0 is the pretrained encoder
            from levyjepa.training.pretrained import load_pretrained

            try:
                report = load_pretrained(encoder, pretrained, strict=strict)
            except ConfigError as err:
                raise ConfigError(f"{run_dir}: the untrained baseline of a run started from "
                                  f"encoder.pretrained is those weights: {err}") from None
        encoder.eval()
        return TrainedRun(**found, step=0, pretrained=report)
    try:
        model_state = load_file(str(weights))
    except Exception as err:  # a truncated or corrupt file: safetensors raises several kinds
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ConfigError(f"{weights}: not readable ({first}); a truncated or corrupt "
                          "checkpoint?") from None
    state = encoder_state(model_state, key=key)
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        bad = (missing or unexpected)[0]
        raise ConfigError(f"{weights}: does not match the recipe's encoder section "
                          f"({'missing' if missing else 'unexpected'} key '{key}.{bad}')")
    encoder.eval()
    step = int(json.loads((ckpt / STATE_FILE).read_text())["step"])
    return TrainedRun(**found, step=step)
