"""Peak memory of DAVIS label propagation on a 480 x 854 sequence of 100 frames (CPU).

Writes a synthetic DAVIS tree (100 JPEG frames, palette annotations with two objects) to a
temporary folder, then runs :func:`levyjepa.eval.benchmarks.davis.evaluate_davis` with a random
feature function of ViT-S/8 size (patch 8, 384 channels: 60 x 104 tokens on DINO's 480 x 832
frames, 60 x 106 with ``--size-multiple 8``) and prints one JSON line: the process's peak
resident memory (``resource.getrusage``) after the imports, before and after the evaluation,
the difference, what holding every frame's features at once would take, and the time.

    MALLOC_MMAP_THRESHOLD_=131072 .venv/bin/python benchmarks/davis_memory.py [--frames 100]

(the fixed threshold returns freed buffers to the system, so the peak reflects live memory).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from levyjepa.eval.benchmarks.davis import evaluate_davis, resized_size

H, W, PATCH, DIM = 480, 854, 8, 384


def write_tree(root: Path, frames: int) -> None:
    """A one-sequence DAVIS tree ``seq`` of ``frames`` 480 x 854 frames, two moving objects."""
    rng = np.random.default_rng(0)
    for t in range(frames):
        m = np.zeros((H, W), np.uint8)
        m[100:300, 100 + 3 * t:300 + 3 * t] = 1
        m[320:440, 500:700] = 2
        rgb = (m[..., None] * 80 + rng.integers(0, 60, (H, W, 3))).astype(np.uint8)
        jpg = root / "JPEGImages" / "480p" / "seq" / f"{t:05d}.jpg"
        jpg.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(jpg)
        png = root / "Annotations" / "480p" / "seq" / f"{t:05d}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(m, mode="P")
        img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
        img.save(png)
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("seq\n")


def random_features(frames: torch.Tensor) -> torch.Tensor:
    """``(n, 3, H', W')`` -> random ``(n, H' // 8, W' // 8, 384)`` tokens."""
    return torch.randn(frames.shape[0], frames.shape[2] // PATCH, frames.shape[3] // PATCH, DIM)


random_features.patch = PATCH  # type: ignore[attr-defined]


def peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size-multiple", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=8)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    imported = peak_rss()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "davis"
        write_tree(root, args.frames)
        before = peak_rss()
        start = time.perf_counter()
        res = evaluate_davis(random_features, root=root, out_dir=Path(tmp) / "out",
                             progress=False, pictures=0, size_multiple=args.size_multiple,
                             chunk=args.chunk)
        seconds = time.perf_counter() - start
        after = peak_rss()
    h, w = resized_size(H, W, short_side=480, size_multiple=args.size_multiple)
    grid = (h // PATCH, w // PATCH)
    out = {"bench": "davis_memory", "frames": args.frames, "tokens": list(grid), "channels": DIM,
           "chunk": args.chunk, "peak_rss_imports_mib": round(imported / 2**20, 1),
           "peak_rss_before_mib": round(before / 2**20, 1),
           "peak_rss_after_mib": round(after / 2**20, 1),
           "peak_rss_added_mib": round((after - before) / 2**20, 1),
           "all_features_mib": round(args.frames * grid[0] * grid[1] * DIM * 4 / 2**20, 1),
           "seconds": round(seconds, 1), "j_and_f": round(res["davis/j_and_f"], 4)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
