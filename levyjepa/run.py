"""Train from a recipe.

Usage::

    python -m levyjepa.run RECIPE [key=value ...] [--print-config] [--traceback]
    accelerate launch --num_processes 1 --num_machines 1 --mixed_precision bf16 \\
        --dynamo_backend no -m levyjepa.run RECIPE [key=value ...]
    torchrun --nproc_per_node 2 -m levyjepa.run RECIPE [key=value ...]   # several CPU processes

Without a config file (``accelerate config``), ``accelerate launch`` warns about each of its
four options left unset; the flags above set them: one process on one machine (N GPUs:
``--multi_gpu --num_processes N``), no TorchDynamo from Accelerate (``trainer.compile``
compiles the model), and ``--mixed_precision bf16``, which agrees with the recipes'
``trainer.precision: bf16`` but decides nothing: the precision is always the recipe's
``trainer.precision`` (bf16 on a GPU only), given to Accelerate explicitly.

Examples::

    # the embedded default: a tiny ViT + SIGReg on generated shapes, about 1 minute on a CPU
    python -m levyjepa.run recipes/quickstart.yaml
    # a 2-step CPU smoke test in a chosen folder
    python -m levyjepa.run recipes/quickstart.yaml trainer.max_steps=2 out_dir=runs/smoke
    # show the fully resolved recipe and exit
    python -m levyjepa.run recipes/image_levy2d.yaml --print-config trainer.epochs=10
    # the mission: ViT-S/8 + SIGReg + the Lévy 2D prior on Imagenette, on GPU
    accelerate launch --num_processes 1 --num_machines 1 --mixed_precision bf16 \\
        --dynamo_backend no -m levyjepa.run recipes/image_levy2d.yaml

Errors in the recipe or the command line are printed as one line, exit status 2; a run stopped
by a non-finite loss or gradient (``trainer.on_nonfinite: stop``) prints one line, exit status 3.
Ctrl-C (SIGINT), SIGTERM or SIGUSR1 (SLURM's warning) during training finishes the current step,
writes a checkpoint and prints one line with the command that continues the run, exit status
130 (SIGINT), 143 (SIGTERM) or 138 (SIGUSR1); the same signal twice stops at once
(:mod:`levyjepa.training.interrupt`).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from levyjepa.config.schema import Recipe
from levyjepa.core.cli_help import HelpFormatter, settings_text
from levyjepa.core.errors import ConfigError

SECTIONS = {
    "data": "the data source {name, ...} and the loader keys batch_size, workers",
    "views": "how training views are made of an image source's images",
    "encoder": "the encoder {name, ...}",
    "method": "the SSL method {name, ...}; method.sigreg: its SIGReg settings",
    "priors": "priors on the method's outputs: term -> {name, input, weight, ...}",
    "optim": "AdamW, batch-size scaling, warm-up then cosine schedule, gradient accumulation",
    "trainer": "length, device, precision, evaluation and checkpoint cadence, speed",
    "log": "logging cadence, progress bar, trackers, pictures, diagnostics",
}
"""The recipe's sections (``levyjepa/config/schema.py``), as ``--help`` lists them."""

TOP_LEVEL = {
    "name": "the run's name (null: the recipe file's stem)",
    "seed": "the random seed",
    "plugins": "modules imported before the recipe is checked (components of your own)",
    "out_dir": "the run directory (null: runs/<name>-<date>-<time>)",
    "resume": "auto: continue the run in out_dir from its latest checkpoint; or a "
              "checkpoint folder or run directory",
    "overwrite": "start over in an out_dir that already holds a run",
    "resume_changes": "keys a resumed run changes on purpose, e.g. [optim.net_lr_bs256]",
}
"""The top-level keys that are not sections, as ``--help`` describes them."""


def _epilog() -> str:
    """Sections, top-level keys with their defaults, launchers: the end of ``--help``."""
    column = max(len(k) for k in SECTIONS)
    sections = [f"  {key:<{column}}  {text}" for key, text in SECTIONS.items()]
    return "\n".join([
        "recipe sections (each key with this recipe's value: RECIPE --print-config):",
        *sections, "",
        settings_text("top-level keys (key=value; the default when the recipe sets none):",
                      Recipe, descriptions=TOP_LEVEL, names=list(TOP_LEVEL)), "",
        "launchers (the accelerate flags: pydoc levyjepa.run):",
        "  accelerate launch --num_processes 1 --num_machines 1 --mixed_precision bf16 \\",
        "      --dynamo_backend no -m levyjepa.run RECIPE [key=value ...]",
        "  torchrun --nproc_per_node 2 -m levyjepa.run RECIPE [key=value ...]",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, load the recipe, train. Returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m levyjepa.run",
        description="Pretrain an encoder from a recipe (recipes/*.yaml).",
        formatter_class=HelpFormatter,
        epilog=_epilog(),
    )
    parser.add_argument("recipe", help="recipe file, e.g. recipes/quickstart.yaml")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. trainer.epochs=3")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved recipe and exit")
    parser.add_argument("--traceback", action="store_true",
                        help="show the full traceback of recipe errors")
    args = parser.parse_intermixed_args(argv)
    show_traceback = args.traceback or os.environ.get("LEVYJEPA_TRACEBACK") == "1"
    try:
        from omegaconf import OmegaConf

        from levyjepa.config.recipe import load_recipe

        cfg = load_recipe(args.recipe, args.overrides)
        if args.print_config:
            print(OmegaConf.to_yaml(cfg), end="")
            return 0
        from accelerate import PartialState

        from levyjepa.training.interrupt import TrainingInterrupted, resume_command
        from levyjepa.training.loop import train
        from levyjepa.training.nonfinite import NonFiniteError

        try:
            summary = train(cfg)
        except NonFiniteError as err:
            if show_traceback:
                raise
            print(f"levyjepa: stopped: {err}", file=sys.stderr)
            return 3
        except TrainingInterrupted as stop:
            if stop.main_process:
                again = resume_command([args.recipe, *args.overrides], stop.run_dir,
                                       distributed=stop.distributed)
                print(f"levyjepa: stopped by {stop.signal_name} after step {stop.step}, "
                      f"checkpoint {stop.checkpoint}; continue with: {again}", file=sys.stderr)
            return stop.exit_status
        finally:  # the run's (sharded) tensors hold the process groups: free them now, while
            gc.collect()  # the interpreter is whole (not in gloo's threads at its shutdown)
        if cfg.log.first_look and PartialState().is_main_process:
            from levyjepa.eval.first_look import first_look_of_run

            first_look_of_run(Path(summary["run_dir"]), progress=cfg.log.progress)
    except ConfigError as err:
        if show_traceback:
            raise
        print(f"levyjepa: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C, or one before or after the training loop
        if show_traceback:
            raise
        print("levyjepa: interrupted; the run's last complete checkpoint (if any) is where "
              "resume=auto continues", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
