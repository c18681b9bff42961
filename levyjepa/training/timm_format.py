"""An encoder's backbone as a timm model folder (Hugging Face hub layout), for other tools.

:func:`write_timm_folder` writes ``config.json`` + ``model.safetensors`` with timm's own writer
(:func:`timm.models.save_for_hf`): the backbone's state dict, and a config recording the timm
architecture, the ``model_args`` that rebuild it (``timm.create_model(arch, **model_args)``,
``num_classes=0``: no classifier head) and the preprocessing levyjepa trained with (ImageNet mean
and std, the training input size, resize and centre crop: ``crop_pct`` 1, bilinear), so
``timm.data.resolve_data_config`` gives it. timm then loads the folder on its own, either way::

    timm.create_model("local-dir:OUT/timm", pretrained=True)
    timm.create_model(arch, pretrained=True,
                      pretrained_cfg_overlay={"file": "OUT/timm/model.safetensors"}, **model_args)

Only a backbone that a plain timm model equals is written: the encoder must expose ``arch`` (a
timm model name), ``model_args`` and ``backbone`` (as :class:`~levyjepa.encoders.vit.ViTEncoder`
and :class:`~levyjepa.encoders.timm_encoder.TimmEncoder` do), and not say
``timm_exportable = False`` (a CIFAR stem, a stage cut). :func:`timm_skip_reason` says why not.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from torch import nn

from levyjepa.core.atomic import dir_mode, fsync_tree, remove_folder, replace_folder
from levyjepa.data.views.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["TIMM_DIR", "timm_load_commands", "timm_skip_reason",
           "write_timm_folder"]

TIMM_DIR = "timm"
CONFIG_JSON = "config.json"
WEIGHTS_FILE = "model.safetensors"
# training-only arguments (timm leaves them out of a saved config too)
_DROP_RATES = ("drop_rate", "drop_path_rate", "drop_block_rate")
# provenance of timm's own ImageNet weights, which the backbone's default pretrained_cfg carries
# and which says nothing true of these weights
_FOREIGN_PROVENANCE = ("license", "origin_url", "paper_name", "paper_ids", "notes")
_LOAD_HINT = "load the encoder with levyjepa.export.load_encoder"


def timm_skip_reason(encoder: nn.Module) -> Optional[str]:
    """Why a plain timm model cannot hold this encoder's backbone, or ``None`` when one can.

    Args:
        encoder: A levyjepa encoder.

    Returns:
        One clause (``"the CIFAR stem has no timm equivalent"``), or ``None``.
    """
    import timm

    name = type(encoder).__name__
    arch = getattr(encoder, "arch", None)
    model_args = getattr(encoder, "model_args", None)
    backbone = getattr(encoder, "backbone", None)
    if not isinstance(arch, str) or not isinstance(model_args, Mapping):
        return f"the encoder ({name}) names no timm arch and model_args"
    if not timm.is_model(arch):
        return f"the encoder's arch '{arch}' is not a timm model"
    if not isinstance(backbone, nn.Module) or not hasattr(backbone, "pretrained_cfg"):
        return f"the encoder ({name}) holds no timm backbone"
    if not getattr(encoder, "timm_exportable", True):
        if getattr(encoder, "cifar_stem", False):
            return "the CIFAR stem has no timm equivalent"
        stage = getattr(encoder, "stage", None)
        if stage is not None:
            return f"the stage cut (stage={stage}) has no timm equivalent"
        return f"the encoder's backbone ({name}) has no timm equivalent"
    for key, value in _export_args(model_args).items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            return f"model_args.{key} ({type(value).__name__}) cannot be written to config.json"
    if "data_config" not in inspect.signature(timm.models.save_for_hf).parameters:
        return f"timm {timm.__version__} is too old to write a timm folder (upgrade timm)"
    return None


def _export_args(model_args: Mapping[str, Any]) -> dict[str, Any]:
    """The reconstruction arguments worth recording: ``model_args`` without the drop rates."""
    return {k: v for k, v in model_args.items() if k not in _DROP_RATES}


def timm_load_commands(folder: str | Path, arch: str, model_args: Mapping[str, Any]
                       ) -> tuple[str, str]:
    """The two Python lines that load a folder written by :func:`write_timm_folder`.

    Args:
        folder: The timm folder.
        arch: The timm architecture.
        model_args: The keyword arguments of ``timm.create_model`` (the encoder's).

    Returns:
        ``timm.create_model("local-dir:...", pretrained=True)`` and ``timm.create_model(arch,
        pretrained=True, pretrained_cfg_overlay={"file": ".../model.safetensors"}, ...)``.
    """
    folder = Path(folder)
    args = "".join(f", {k}={v!r}" for k, v in _export_args(model_args).items())
    weights = json.dumps(str(folder / WEIGHTS_FILE))
    return (f"timm.create_model({json.dumps(f'local-dir:{folder}')}, pretrained=True)",
            f"timm.create_model({json.dumps(arch)}, pretrained=True, "
            f'pretrained_cfg_overlay={{"file": {weights}}}{args})')


def write_timm_folder(encoder: nn.Module, folder: str | Path, *, img_size: Optional[int],
                      description: Optional[str] = None) -> Path | str:
    """Write the encoder's backbone as a timm folder (see the module docstring), atomically.

    The folder is written into a temporary folder beside ``folder`` and renamed into place
    (replacing an older one); on an error nothing of it is left. When a plain timm model cannot
    hold the backbone, nothing is written, an older ``folder`` is removed (it would describe
    other weights) and the reason is returned.

    Args:
        encoder: A levyjepa encoder (its ``backbone`` is written as it is: put the evaluated
            weights in it first).
        folder: The destination folder (``OUT/timm``).
        img_size: The training input side in pixels (the config's ``input_size``); ``None``
            keeps the backbone's own.
        description: The config's ``pretrained_cfg.description`` (where the weights come from).

    Returns:
        The folder written, or the reason (a ``str``) why none was.
    """
    from timm.models import save_for_hf

    folder = Path(folder)
    reason = timm_skip_reason(encoder)
    if reason is not None:
        remove_folder(folder)
        return f"{reason}; {_LOAD_HINT}"
    backbone: nn.Module = encoder.backbone
    model_args = _export_args(encoder.model_args)
    channels = int(model_args.get("in_chans", getattr(backbone, "in_chans", 3)))
    data_config: dict[str, Any] = {"interpolation": "bilinear", "crop_pct": 1.0,
                                   "crop_mode": "center"}
    if channels == len(IMAGENET_MEAN):
        data_config.update(mean=IMAGENET_MEAN, std=IMAGENET_STD)
    if img_size is not None:
        data_config["input_size"] = (channels, int(img_size), int(img_size))
    pretrained_cfg: dict[str, Any] = {"tag": "levyjepa", "description": description,
                                      **dict.fromkeys(_FOREIGN_PROVENANCE)}
    folder.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("tmp", "old"):  # left by a killed export
        for stale in folder.parent.glob(f".{folder.name}.*.{suffix}"):
            shutil.rmtree(stale, ignore_errors=True)
    staged = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        os.chmod(staged, dir_mode())  # mkdtemp makes it 0700; share it like any other folder
        save_for_hf(backbone, str(staged), model_config={"pretrained_cfg": pretrained_cfg},
                    model_args=model_args, safe_serialization=True, data_config=data_config)
        fsync_tree(staged)
        replace_folder(staged, folder)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return folder
