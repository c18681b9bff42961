"""Draw I-JEPA's and V-JEPA's masks by both laws, print their statistics, draw their pictures.

The laws are those of :mod:`levyjepa.methods.block_masks` and
:mod:`levyjepa.methods.tube_masks` (``reference``: the authors' collators; ``levyjepa``: this
library's earlier law), at the papers' sizes: 224 px images with 16 px patches (a 14x14 grid),
and 16-frame clips of 224 px with 2x16x16 tubelets (an 8x14x14 grid). docs/masks.md shows the
output::

    python benchmarks/mask_laws.py                       # 4,000 draws; pictures into docs/masks/
    python benchmarks/mask_laws.py --draws 400 --out /tmp/masks

Printed: for I-JEPA, the target heights and widths over ``--draws`` batches (one size per
batch) with the reference's exact probabilities (its one uniform number enumerated), the
context size of an image before the batch's cut (``--draws`` single images) and after it
(batches of ``--batch``), and how often a target or context covers a cell of the last row or
column; for V-JEPA's long-range mask (2 blocks of 0.7), the blocks' heights and the share
spanning the whole height, and for both masks the context size after the cut and its share in
the clip's first and last time steps. Pictures (PNG): ``ijepa_coverage.png`` (how often each
patch is a target or a context patch after the cut), ``ijepa_sides.png`` (target heights and
widths), ``vjepa_masks.png`` (long-range heights, context per time step after the cut).
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path

import torch

from levyjepa.methods.block_masks import (
    MASK_LAWS,
    mask_generator,
    sample_block_masks,
    size_generator,
)
from levyjepa.methods.ijepa import block_side_of
from levyjepa.methods.tube_masks import sample_tube_masks

GRID = (14, 14)
CLIP_GRID = (8, 14, 14)
V_MASKS = {"short-range": dict(blocks=8, spatial_scale=(0.15, 0.15)),
           "long-range": dict(blocks=2, spatial_scale=(0.7, 0.7))}


def exact_reference_sides(points: int = 200_000) -> tuple[Counter, Counter]:
    """Probabilities of the reference's target heights and widths on GRID: one ``u`` sets
    scale (0.15-0.2) and aspect (0.75-1.5); the area is floored, sides rounded and cut to 13;
    ``u`` enumerated at ``points`` midpoints."""
    heights, widths = Counter(), Counter()
    for i in range(points):
        u = (i + 0.5) / points
        n = math.floor(GRID[0] * GRID[1] * (0.15 + 0.05 * u))
        a = 0.75 + 0.75 * u
        heights[min(round(math.sqrt(n * a)), GRID[0] - 1)] += 1 / points
        widths[min(round(math.sqrt(n / a)), GRID[1] - 1)] += 1 / points
    return heights, widths


def ijepa_stats(law: str, draws: int, batch: int, seed: int) -> dict:
    """Sides, coverage and context sizes of ``draws`` batches (and single images) by ``law``."""
    heights, widths = Counter(), Counter()
    targets, context = torch.zeros(GRID[0] * GRID[1]), torch.zeros(GRID[0] * GRID[1])
    cut = []
    for step in range(draws):
        masks = sample_block_masks(GRID, batch, law=law,
                                   generator=mask_generator(seed=seed, step=step, rank=0),
                                   sizes=size_generator(seed=seed, step=step))
        h, w = block_side_of(masks.targets, GRID)
        heights[h] += 1
        widths[w] += 1
        covered = torch.zeros(batch, targets.numel(), dtype=torch.bool)  # union of the blocks
        covered.scatter_(1, masks.targets.flatten(1), True)
        targets += covered.sum(0).float()
        context += torch.bincount(masks.context.flatten(), minlength=context.numel()).float()
        cut.append(masks.context.shape[1])
    alone = [sample_block_masks(GRID, 1, law=law,
                                generator=mask_generator(seed=seed + 1, step=step, rank=0))
             .context.shape[1] for step in range(draws)]
    images = draws * batch
    # the share of images whose targets (any of the 4 blocks) or context cover each patch
    target_map = (targets / images).view(GRID)
    context_map = (context / images).view(GRID)
    edge = torch.zeros(GRID, dtype=torch.bool)
    edge[-1, :] = edge[:, -1] = True
    return {"heights": heights, "widths": widths, "target_map": target_map,
            "context_map": context_map, "context_alone": sum(alone) / draws,
            "context_cut": sum(cut) / draws, "target_edge": float(target_map[edge].mean()),
            "context_edge": float(context_map[edge].mean())}


def vjepa_stats(law: str, draws: int, batch: int, seed: int) -> dict:
    """Long-range heights and the context per time step after the cut, by ``law``."""
    heights, context_size = Counter(), {name: [] for name in V_MASKS}
    per_step = {name: torch.zeros(CLIP_GRID[0]) for name in V_MASKS}
    for step in range(draws):
        gen = mask_generator(seed=seed, step=step, rank=0)
        for name, mask in V_MASKS.items():
            masks = sample_tube_masks(CLIP_GRID, batch, generator=gen, law=law,
                                      sizes=size_generator(seed=seed, step=step), **mask)
            if name == "long-range":
                heights[masks.spatial_side[0]] += 1
            context_size[name].append(masks.context.shape[1])
            t = masks.context // (CLIP_GRID[1] * CLIP_GRID[2])
            per_step[name] += torch.bincount(t.flatten(), minlength=CLIP_GRID[0]).float()
    return {"heights": heights,
            "context": {k: sum(v) / draws for k, v in context_size.items()},
            "per_step": {k: v / v.sum() for k, v in per_step.items()}}


def pictures(ij: dict, vj: dict, exact: tuple[Counter, Counter], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(6.4, 6.0))
    for row, law in enumerate(MASK_LAWS):
        for col, (key, title) in enumerate((("target_map", "targets"),
                                            ("context_map", "context after the cut"))):
            ax = axes[row, col]
            top = max(float(ij[law_][key].max()) for law_ in MASK_LAWS)
            im = ax.imshow(ij[law][key].numpy(), vmin=0, vmax=top, cmap="viridis")
            ax.set_title(f"{law}: {title}", fontsize=9)
            ax.set_xticks([0, 13])
            ax.set_yticks([0, 13])
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle("I-JEPA masks, 14x14 grid: share of images covering each patch", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "ijepa_coverage.png", dpi=72)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8))
    for ax, key, law_exact in zip(axes, ("heights", "widths"), exact):
        sides = range(3, 10)
        for k, law in enumerate(MASK_LAWS):
            total = sum(ij[law][key].values())
            ax.bar([s + (k - 0.5) * 0.4 for s in sides],
                   [ij[law][key][s] / total for s in sides], width=0.4, label=law)
        ax.plot([s - 0.2 for s in sides], [law_exact[s] for s in sides], "k_", markersize=10,
                label="reference, exact")
        ax.set_xlabel(f"target block {key[:-1]} (patches)")
        ax.set_ylabel("share of draws")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ijepa_sides.png", dpi=72)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8))
    sides = range(9, 15)
    for k, law in enumerate(MASK_LAWS):
        total = sum(vj[law]["heights"].values())
        axes[0].bar([s + (k - 0.5) * 0.4 for s in sides],
                    [vj[law]["heights"][s] / total for s in sides], width=0.4, label=law)
        for name, style in (("short-range", "-"), ("long-range", "--")):
            axes[1].plot(range(CLIP_GRID[0]), vj[law]["per_step"][name].numpy(), style,
                         color=f"C{k}", label=f"{law}, {name}")
    axes[0].set_xlabel("long-range block height (of 14)")
    axes[0].set_ylabel("share of draws")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("time step of the clip (of 8)")
    axes[1].set_ylabel("share of context tubelets")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "vjepa_masks.png", dpi=72)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4000, help="batches per law")
    parser.add_argument("--batch", type=int, default=32, help="images or clips per batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/masks",
                        help="folder of the pictures ('' for none)")
    args = parser.parse_args(argv)
    exact = exact_reference_sides()
    ij = {law: ijepa_stats(law, args.draws, args.batch, args.seed) for law in MASK_LAWS}
    vj = {law: vjepa_stats(law, args.draws // 4, args.batch, args.seed) for law in MASK_LAWS}
    print(f"I-JEPA, 14x14 grid, {args.draws} batches of {args.batch} images")
    print("| | reference | levyjepa | reference, exact |\n|---|---|---|---|")
    for key, law_exact in zip(("heights", "widths"), exact):
        for s in sorted(set(ij["reference"][key]) | set(ij["levyjepa"][key]) | set(law_exact)):
            share = [ij[law][key][s] / args.draws for law in MASK_LAWS]
            print(f"| target {key[:-1]} {s} | {share[0]:.3f} | {share[1]:.3f} | "
                  f"{law_exact[s]:.3f} |")
    for key, what in (("context_alone", "context patches of an image, before the cut"),
                      ("context_cut", f"context patches after the cut (batch {args.batch})"),
                      ("target_edge", "last row and column: share covered by a target"),
                      ("context_edge", "last row and column: share in the context")):
        print(f"| {what} | {ij['reference'][key]:.3f} | {ij['levyjepa'][key]:.3f} | |")
    print(f"\nV-JEPA, 8x14x14 grid, {args.draws // 4} batches of {args.batch} clips")
    print("| | reference | levyjepa |\n|---|---|---|")
    for s in sorted(set(vj["reference"]["heights"]) | set(vj["levyjepa"]["heights"])):
        share = [vj[law]["heights"][s] / (args.draws // 4) for law in MASK_LAWS]
        print(f"| long-range block height {s} | {share[0]:.3f} | {share[1]:.3f} |")
    for name in V_MASKS:
        print(f"| {name}: context tubelets after the cut | {vj['reference']['context'][name]:.1f}"
              f" | {vj['levyjepa']['context'][name]:.1f} |")
        first = [float(vj[law]["per_step"][name][0]) for law in MASK_LAWS]
        last = [float(vj[law]["per_step"][name][-1]) for law in MASK_LAWS]
        print(f"| {name}: share of the context in the first / last time step | "
              f"{first[0]:.3f} / {last[0]:.3f} | {first[1]:.3f} / {last[1]:.3f} |")
    if args.out:
        pictures(ij, vj, exact, Path(args.out))
        print(f"\npictures: {args.out}/ijepa_coverage.png, ijepa_sides.png, vjepa_masks.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
