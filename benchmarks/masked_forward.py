"""The masked forward's cost against the full forward (I-JEPA's and V-JEPA's context encoder).

For each encoder, the FLOPs (``torch.utils.flop_counter``) and the median wall time of a
forward and backward of ``forward_tokens`` (all patches or tubelets) against ``forward_masked``
with a fraction of them kept (default 25%, a random subset per input)::

    python benchmarks/masked_forward.py                  # image ViTs (quickstart's, seed's)
    python benchmarks/masked_forward.py --video          # video ViTs (video study's, ViT-S)
    python benchmarks/masked_forward.py --kept 0.25 0.5 --batch 16 --repeats 5

Timings are of this machine at the time of the run; FLOPs are exact counts of matmuls,
convolutions and attention (the fused CPU attention kernel counted too:
:func:`common.flop_counter`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from levyjepa.encoders.video_vit import VideoViTEncoder
from levyjepa.encoders.vit import ViTEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import flop_counter  # noqa: E402

ENCODERS = {
    "quickstart (ViT 64 wide, 2 blocks, 8x8 grid at 32 px)": dict(
        arch="vit_tiny_patch16_224", img_size=32, patch_size=4, embed_dim=64, depth=2,
        num_heads=2, emb_dim=64),
    "seed (ViT-S/8, 16x16 grid at 128 px)": dict(arch="vit_small_patch8_224", img_size=128,
                                                  emb_dim=384),
}
VIDEO_ENCODERS = {
    "video study (64 wide, 2 blocks, 1x4x4 tubelets, 8x8x8 grid)": dict(
        arch="vit_small", img_size=32, num_frames=8, patch_size=4, tubelet_size=1,
        embed_dim=64, depth=2, num_heads=2, emb_dim=64),
    "video ViT-S (2x16x16 tubelets, 16 frames of 128 px, 8x8x8 grid)": dict(
        arch="vit_small", img_size=128, num_frames=16, emb_dim=384),
}


def measure(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[int, float]:
    """FLOPs of one forward + backward, and its median wall time in seconds."""
    with flop_counter() as counter:
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
    parser.add_argument("--video", action="store_true", help="the video encoders (video_vit)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          "forward + backward")
    for label, kwargs in (VIDEO_ENCODERS if args.video else ENCODERS).items():
        build = VideoViTEncoder if args.video else ViTEncoder
        enc = build(**kwargs, drop_path=0.0, pool="mean", with_proj=False,
                    with_tokens_proj=False)
        side = kwargs["img_size"]
        frames = (kwargs["num_frames"],) if args.video else ()
        images = torch.randn(args.batch, 3, *frames, side, side)
        patches = 1
        for g in enc.grid:
            patches *= g
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
