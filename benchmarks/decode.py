"""Decoding throughput of each video backend: clips/s and frames/s, in-process and N workers.

The backends are TorchCodec, PyAV and decord (those usable here; ``--backends`` to choose).

Reads clips as training does (``frames_per_clip`` frames every ``frame_step``-th from a random
start, one file per clip, the file opened and closed per clip) from the files of ``--root``
(default ``../shared/data/videos``, five real clips: H.264 MP4 at 28, 30 and 29.97 fps, a
32-frame clip, an MPEG-4 part 2 AVI with audio), drawn uniformly with replacement. For each
backend and each entry of ``--workers``: ``0`` decodes in this process, ``N >= 1`` in ``N``
DataLoader worker processes. By default clips are only decoded (uint8 frames); ``--augment``
adds the training views (``--views`` random crops to ``--size`` px with colour jitter, float,
normalised). Throughput is measured after ``--warmup`` clips, over ``--clips`` clips, in
``--repeats`` rounds that alternate the backends (so that a change of load from other jobs hits
both); the table gives the median and the best round, and for ``--workers 0`` the CPU time
per clip of this process, the decoding cost itself, which other jobs on the cores change far
less than they change wall-clock rates. The machine's load average and the versions of the
decoders (and of the FFmpeg libraries each uses) are printed. ``--in-memory`` reads each file's
bytes into memory first and decodes from them (as a tar-shard source does).

    .venv/bin/python benchmarks/decode.py
    .venv/bin/python benchmarks/decode.py --workers 0 4 --clips 400 --augment
    .venv/bin/python benchmarks/decode.py --workers 0 --backends torchcodec pyav --in-memory
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from levyjepa.data.video.video_clips import ClipDataset
from levyjepa.data.video.video_folder import scan_videos
from levyjepa.data.video.video_readers import available_backends, open_video
from levyjepa.data.video.video_sources import ClipPlan, VideoFiles, read_planned
from levyjepa.data.video.video_transforms import ClipAugmentation

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def as_tensor(frames: np.ndarray) -> torch.Tensor:
    """Decode-only transform: the uint8 frames as they come."""
    return torch.from_numpy(np.ascontiguousarray(frames))


class InMemoryFiles(VideoFiles):
    """:class:`VideoFiles` whose files are read into memory first and decoded from bytes."""

    def __init__(self, paths: list[Path], *, backend: str) -> None:
        super().__init__(paths, backend=backend)
        self.data = [Path(p).read_bytes() for p in self.paths]

    def load(self, index: int, plan: ClipPlan) -> list[np.ndarray]:
        with open_video(self.data[index], self.order[0], name=self.paths[index]) as reader:
            return read_planned(reader, plan)


def versions() -> str:
    """The decoders' versions and the FFmpeg each one uses (PyAV and decord bundle theirs)."""
    parts = [f"torch {torch.__version__}"]
    try:
        import av

        ffmpeg = av.library_versions.get("libavcodec", ())
        parts.append(f"av {av.__version__} (libavcodec {'.'.join(map(str, ffmpeg))})")
    except ImportError:
        pass
    try:
        import decord

        parts.append(f"decord {decord.__version__}")
    except ImportError:
        pass
    try:
        import torchcodec

        parts.append(f"torchcodec {torchcodec.__version__} (FFmpeg "
                     f"{getattr(torchcodec, 'ffmpeg_major_version', '?')})")
    except ImportError:
        pass
    return ", ".join(parts)


def measure(dataset: ClipDataset, *, workers: int, clips: int, warmup: int, seed: int
            ) -> tuple[float, float]:
    """Wall-clock and CPU seconds of this process to load ``clips`` items after ``warmup``
    items (one item per batch). With ``workers == 0`` the CPU time is the decoding cost itself,
    which other jobs on the machine barely change."""
    sampler = RandomSampler(dataset, replacement=True, num_samples=clips + warmup,
                            generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(dataset, batch_size=1, sampler=sampler, num_workers=workers,
                        collate_fn=lambda batch: batch)
    started = cpu = None
    for i, _ in enumerate(loader):
        if i + 1 == warmup:
            started, cpu = time.perf_counter(), time.process_time()
    assert started is not None and cpu is not None
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--backends", nargs="+", default=list(available_backends()))
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, os.cpu_count() or 1])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--frames-per-clip", type=int, default=16)
    parser.add_argument("--frame-step", type=int, default=4)
    parser.add_argument("--augment", action="store_true", help="also make the training views")
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--in-memory", action="store_true",
                        help="decode from each file's bytes in memory instead of its path")
    args = parser.parse_args()

    paths, labels, _ = scan_videos(args.root)
    torch.set_num_threads(1)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    work = f"decode + {args.views} views at {args.size} px" if args.augment else "decode only"
    print(f"{len(paths)} files in {args.root}; {args.frames_per_clip} frames every "
          f"{args.frame_step}; {work}")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.clips} clips per row after "
          f"{args.warmup} warm-up clips")
    print(versions() + ("; decoding from bytes in memory" if args.in_memory else ""))
    datasets = {}
    for backend in args.backends:
        transform, views = (ClipAugmentation(size=args.size), args.views) if args.augment else (
            as_tensor, 1)
        files = (InMemoryFiles(paths, backend=backend) if args.in_memory
                 else VideoFiles(paths, backend=backend))
        datasets[backend] = ClipDataset(
            files, labels, transform=transform,
            frames_per_clip=args.frames_per_clip, frame_step=args.frame_step, fps=None,
            views=views, on_error="raise", seed=args.seed)
    rates: dict[tuple[str, int], list[float]] = {}
    cpu_ms: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):  # rounds interleave the backends: load changes hit both
        for workers in args.workers:
            for backend, dataset in datasets.items():
                wall, cpu = measure(dataset, workers=workers, clips=args.clips,
                                    warmup=args.warmup, seed=args.seed)
                rates.setdefault((backend, workers), []).append(args.clips / wall)
                cpu_ms.setdefault((backend, workers), []).append(1000 * cpu / args.clips)
    print(f"{'backend':<10} {'workers':>7} {'clips/s':>9} {'best':>7} {'frames/s':>9} "
          f"{'ms/clip':>8} {'CPU ms/clip':>11}   (median and best of {args.repeats} rounds)")
    for (backend, workers), values in rates.items():
        rate = statistics.median(values)
        cpu = f"{statistics.median(cpu_ms[backend, workers]):>11.1f}" if workers == 0 else (
            f"{'-':>11}")
        print(f"{backend:<10} {workers:>7} {rate:>9.1f} {max(values):>7.1f} "
              f"{rate * args.frames_per_clip:>9.0f} {1000 / rate:>8.1f} {cpu}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
