"""Write a generated class-per-folder JPEG tree shaped like Imagenette-160, for benchmarks.

Usage::

    python benchmarks/make_images.py OUT [--train 9469] [--val 100] [--size 160] [--unique 256]

``OUT/train/class_k/*.JPEG`` and ``OUT/val/class_k/*.JPEG``: ``--unique`` dead-leaves scenes
(:func:`levyjepa.data.generated.dead_leaves.render_shapes`, 10 classes) of ``--size`` px, saved as
JPEG quality 90 (as the local Imagenette copy) and repeated to ``--train`` training files (decoding
costs the same whatever the repetition). With the default 9,469 training images a batch of 96
gives Imagenette's 98 steps per epoch. For machines that cannot see ``../shared/data`` (the GPU
machine); throughput depends on the files' size and format, not on what they show.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from levyjepa.data.generated.dead_leaves import render_shapes


def write_tree(out: Path, *, train: int, val: int, size: int, unique: int) -> Path:
    """Write the tree; returns ``out``."""
    if min(train, val, size, unique) < 1:
        raise ValueError("--train, --val, --size and --unique must be >= 1")
    images, labels = render_shapes(unique, size=size, seed=0)
    encoded = []
    for image in images:
        encoded.append(Image.fromarray(image.permute(1, 2, 0).numpy()))
    for split, count in (("train", train), ("val", val)):
        for i in range(count):
            k = i % unique
            folder = out / split / f"class_{int(labels[k])}"
            folder.mkdir(parents=True, exist_ok=True)
            encoded[k].save(folder / f"{split}_{i:05d}.JPEG", quality=90)
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and write the tree."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path, help="folder to create")
    parser.add_argument("--train", type=int, default=9469, help="training files (9469)")
    parser.add_argument("--val", type=int, default=100, help="validation files (100)")
    parser.add_argument("--size", type=int, default=160, help="image side (160)")
    parser.add_argument("--unique", type=int, default=256, help="distinct images (256)")
    args = parser.parse_args(argv)
    write_tree(args.out, train=args.train, val=args.val, size=args.size, unique=args.unique)
    print(f"wrote {args.train} + {args.val} JPEG files of {args.size} px under {args.out}")


if __name__ == "__main__":
    main()
