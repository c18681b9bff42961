"""The masked forward's cost against the full forward (I-JEPA's context encoder).

For each encoder, the FLOPs (``torch.utils.flop_counter``) and the median wall time of a
forward and backward of ``forward_tokens`` (all patches) against ``forward_masked`` with a
fraction of the patches kept (default 25%, a random subset per image)::

    python benchmarks/masked_forward.py                  # the quickstart's ViT and the seed's
    python benchmarks/masked_forward.py --kept 0.25 0.5 --batch 16 --repeats 5

Timings are of this machine at the time of the run; FLOPs are exact counts of matmuls and
convolutions (attention's included).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
from torch.utils.flop_counter import FlopCounterMode

from levyjepa.encoders.vit import ViTEncoder

ENCODERS = {
    "quickstart (ViT 64 wide, 2 blocks, 8x8 grid at 32 px)": dict(
        arch="vit_tiny_patch16_224", img_size=32, patch_size=4, embed_dim=64, depth=2,
        num_heads=2, emb_dim=64),
    "seed (ViT-S/8, 16x16 grid at 128 px)": dict(arch="vit_small_patch8_224", img_size=128,
                                                  emb_dim=384),
}


def measure(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[int, float]:
    """FLOPs of one forward + backward, and its median wall time in seconds."""
    with FlopCounterMode(display=False) as counter:
        fn().float().square().mean().backward()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().float().square().mean().backward()
        times.append(time.perf_counter() - start)
    return counter.get_total_flops(), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kept", type=float, nargs="+", default=[0.25])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          "forward + backward")
    for label, kwargs in ENCODERS.items():
        enc = ViTEncoder(**kwargs, drop_path=0.0, pool="mean", with_proj=False,
                         with_tokens_proj=False)
        side = kwargs["img_size"]
        images = torch.randn(args.batch, 3, side, side)
        patches = enc.grid[0] * enc.grid[1]
        full_flops, full_s = measure(partial(enc.forward_tokens, images), args.repeats)
        print(f"{label}: full {patches} patches {full_flops / 1e9:.2f} GFLOP {full_s * 1e3:.1f} ms")
        for frac in args.kept:
            kept = max(1, round(frac * patches))
            keep = torch.stack([torch.randperm(patches)[:kept].sort().values
                                for _ in range(args.batch)])
            flops, secs = measure(partial(enc.forward_masked, images, keep), args.repeats)
            print(f"  kept {kept}/{patches} ({frac:.0%}): {flops / 1e9:.2f} GFLOP "
                  f"({flops / full_flops:.3f} of full), {secs * 1e3:.1f} ms "
                  f"({secs / full_s:.3f} of full)")


if __name__ == "__main__":
    main()
