"""Export a run's encoder for downstream use, and load it back.

Usage::

    python -m levyjepa.export RUN_DIR [--out DIR] [--checkpoint PATH]

writes (atomically) into ``DIR`` (default ``RUN_DIR/export``):

- ``encoder.safetensors``: the weights of the encoder the method evaluates (the checkpoint's
  ``encoder.*`` entries; for I-JEPA with its EMA teacher, the teacher's
  ``method.teacher.encoder.*``, as I-JEPA evaluates its target encoder);
- ``encoder.yaml``: what rebuilds it: the recipe's ``encoder`` section, ``with_tokens_proj``
  and ``with_proj`` (whether it has the token and pooled projectors), the ``plugins`` the recipe
  imports (an encoder may come from a plugin), and, for the record, the run, checkpoint, step,
  which weights (``source.weights``) and ``levyjepa`` version;
- ``timm/``: the same encoder's backbone (no pooling or projector heads) as a timm model folder
  in the Hugging Face hub layout, ``config.json`` + ``model.safetensors``
  (:mod:`levyjepa.training.timm_format`), which timm loads without levyjepa::

      timm.create_model("local-dir:DIR/timm", pretrained=True)
      timm.create_model(ARCH, pretrained=True,
                        pretrained_cfg_overlay={"file": "DIR/timm/model.safetensors"}, **MODEL_ARGS)

  (the command prints both with the real ``ARCH`` and ``MODEL_ARGS``). Its ``forward_features``
  gives the encoder's token field: a ViT's tokens, prefix tokens first; a ConvNet's feature map
  ``(B, C, h, w)``. The config holds the preprocessing levyjepa trained with (ImageNet mean and
  std, the training input size), so ``timm.data.resolve_data_config({}, model=model)`` gives
  it. An encoder no plain timm model equals (a CIFAR stem, a stage cut, an encoder that is not a
  timm model) gets no ``timm/`` folder, and the command says why.

Loading needs only the two files::

    from levyjepa.export import load_encoder
    enc = load_encoder("runs/my_run/export")
    out = enc(views)   # views (N, V, C, H, W) -> EncoderOutput(emb, proj, tokens, tokens_proj)

``timm/`` is written into a temporary folder beside it and renamed into place (replacing an older
one). Errors are printed as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf
from safetensors.torch import save
from torch import nn

import levyjepa
from levyjepa.core.atomic import atomic_write_bytes, atomic_write_text
from levyjepa.core.cli_help import HelpFormatter
from levyjepa.core.errors import ConfigError
from levyjepa.training.exported import CONFIG_NAME, WEIGHTS_NAME, load_encoder
from levyjepa.training.timm_format import TIMM_DIR, timm_load_commands, write_timm_folder

__all__ = ["CONFIG_NAME", "TIMM_DIR", "WEIGHTS_NAME", "export", "load_encoder", "main"]


def export(run_dir: str | Path, out_dir: Optional[str | Path] = None, *,
           checkpoint: Optional[str | Path] = None) -> Path:
    """Write a run's encoder weights and config, and its timm folder (see the module docstring).

    Args:
        run_dir: The run directory.
        out_dir: Destination folder (default ``run_dir/export``).
        checkpoint: A checkpoint folder (default: the run's latest).

    Returns:
        The destination folder.
    """
    return _export(run_dir, out_dir, checkpoint=checkpoint)[0]


def _export(run_dir: str | Path, out_dir: Optional[str | Path] = None, *,
            checkpoint: Optional[str | Path] = None) -> tuple[Path, Path | str, nn.Module]:
    """:func:`export`, also returning the timm folder (or why there is none) and the encoder."""
    from levyjepa.training.trained import load_trained

    run_dir = Path(run_dir)
    run = load_trained(run_dir, checkpoint=checkpoint)
    out = Path(out_dir) if out_dir is not None else run_dir / "export"
    config: dict[str, Any] = {
        "encoder": OmegaConf.to_container(run.cfg.encoder),
        "with_tokens_proj": run.with_tokens_proj,
        "with_proj": run.with_proj,
        "plugins": list(run.cfg.plugins),
        "source": {"run_dir": str(run_dir), "checkpoint": str(run.checkpoint), "step": run.step,
                   "weights": run.weights_key,
                   "levyjepa_version": levyjepa.__version__},
    }
    state = {k: v.detach().contiguous() for k, v in run.encoder.state_dict().items()}
    atomic_write_bytes(out / WEIGHTS_NAME, save(state, metadata={"format": "pt"}))
    atomic_write_text(out / CONFIG_NAME, OmegaConf.to_yaml(OmegaConf.create(config)))
    img_size = run.cfg.encoder.get("img_size", getattr(run.encoder, "img_size", None))
    timm_dir = write_timm_folder(
        run.encoder, out / TIMM_DIR, img_size=img_size,
        description=f"levyjepa {levyjepa.__version__}: backbone of the encoder "
                    f"({run.weights_key}) of run {run_dir}, step {run.step}")
    return out, timm_dir, run.encoder


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Export a run's encoder; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m levyjepa.export",
                                     description="Write a run's encoder as safetensors + config, "
                                                 "and its backbone as a timm folder.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run directory")
    parser.add_argument("--out", type=Path, default=None, help="folder (default RUN_DIR/export)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a checkpoint folder (default: the latest)")
    args = parser.parse_args(argv)
    try:
        out, timm_dir, encoder = _export(args.run_dir, args.out, checkpoint=args.checkpoint)
    except ConfigError as err:
        print(f"levyjepa: error: {err}", file=sys.stderr)
        return 2
    print(f"export: wrote {out / WEIGHTS_NAME} and {out / CONFIG_NAME}")
    if isinstance(timm_dir, str):
        print(f"export: no timm folder: {timm_dir}")
        return 0
    by_dir, by_arch = timm_load_commands(timm_dir.resolve(), encoder.arch, encoder.model_args)
    print(f"export: wrote {timm_dir} (config.json + model.safetensors); timm loads it with\n"
          f"  {by_dir}\n  {by_arch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
