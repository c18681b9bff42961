"""Train from a recipe.

Usage::

    python -m levyjepa.run RECIPE [key=value ...] [--print-config] [--traceback]
    accelerate launch -m levyjepa.run RECIPE [key=value ...]
    torchrun --nproc_per_node 2 -m levyjepa.run RECIPE [key=value ...]   # several CPU processes

Examples::

    # the embedded default: a tiny ViT + SIGReg on generated shapes, about 1 minute on a CPU
    python -m levyjepa.run recipes/quickstart.yaml
    # a 2-step CPU smoke test in a chosen folder
    python -m levyjepa.run recipes/quickstart.yaml trainer.max_steps=2 out_dir=runs/smoke
    # show the fully resolved recipe and exit
    python -m levyjepa.run recipes/image_levy2d.yaml --print-config trainer.epochs=10
    # the mission: ViT-S/8 + SIGReg + the Lévy 2D prior on Imagenette, on GPU
    accelerate launch -m levyjepa.run recipes/image_levy2d.yaml

Errors in the recipe or the command line are printed as one line, exit status 2; a run stopped
by a non-finite loss or gradient (``trainer.on_nonfinite: stop``) prints one line, exit status 3.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from levyjepa.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, load the recipe, train. Returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m levyjepa.run",
        description="Pretrain an encoder from a recipe (recipes/*.yaml).",
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

        from levyjepa.recipe import load_recipe

        cfg = load_recipe(args.recipe, args.overrides)
        if args.print_config:
            print(OmegaConf.to_yaml(cfg), end="")
            return 0
        from levyjepa.nonfinite import NonFiniteError
        from levyjepa.train import train

        try:
            train(cfg)
        except NonFiniteError as err:
            if show_traceback:
                raise
            print(f"levyjepa: stopped: {err}", file=sys.stderr)
            return 3
    except ConfigError as err:
        if show_traceback:
            raise
        print(f"levyjepa: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
