"""Throughput of the seed's training views: per-image torchvision, batched own, batched kornia.

Three ways to make ``--views`` views of each of ``--images`` 8-bit images of ``--load-size`` px
(SPEC section 7 views of ``--size`` px):

* ``torchvision``: :func:`levyjepa.data.views.transforms.ssl_augmentation` on PIL images, one view
at
  a time, in this process (what one loader worker does with ``views.on: cpu``);
* ``own``: :class:`levyjepa.data.views.device_views.DeviceViews` on the whole batch on ``--device``
  (``views.on: device``);
* ``kornia``: the same chain from ``kornia.augmentation`` (RandomResizedCrop, ColorJitter,
  RandomGrayscale, RandomGaussianBlur, RandomSolarize, RandomHorizontalFlip, Normalize) on the
  batch repeated ``V`` times; skipped with a note when kornia is not installed (the optional
  extra ``pip install 'levyjepa[bench]'``). Kornia's jitter draws one operation order per batch,
  not per view.

Images are generated (dead-leaves scenes), so nothing is read from disk. Prints one JSON line
per method and a Markdown table (views/s, median of ``--repeats`` timed batches after
``--warmup``). Run ``python benchmarks/augment.py --help``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
from PIL import Image

from levyjepa.data.generated.dead_leaves import render_shapes
from levyjepa.data.views.device_views import DeviceViews
from levyjepa.data.views.transforms import IMAGENET_MEAN, IMAGENET_STD, ssl_augmentation


def sync(device: torch.device) -> None:
    """Wait for queued kernels."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[int], object], device: torch.device, *, warmup: int, repeats: int
          ) -> float:
    """Median seconds of ``fn(i)`` over ``repeats`` calls after ``warmup`` calls."""
    for i in range(warmup):
        fn(i)
    sync(device)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(warmup + i)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kornia_views(size: int, views: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The seed's views with kornia, on a float batch ``(N, 3, H, W)`` in ``[0, 1]``."""
    import kornia.augmentation as K

    chain = torch.nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(0.08, 1.0)),
        K.ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((7, 7), (0.1, 2.0), p=0.5),
        K.RandomSolarize(thresholds=(128 / 255, 128 / 255), additions=(0.0, 0.0), p=0.1),
        K.RandomHorizontalFlip(p=0.5),
        K.Normalize(mean=torch.tensor(IMAGENET_MEAN), std=torch.tensor(IMAGENET_STD)),
    )

    def run(images: torch.Tensor) -> torch.Tensor:
        batch = images.float().div_(255.0).repeat_interleave(views, dim=0)
        return chain(batch).unflatten(0, (images.shape[0], views))

    return run


def main(argv: list[str] | None = None) -> list[dict]:
    """Time the three methods; print JSON lines and a table; return the records."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--images", type=int, default=16, help="images per batch (default 16)")
    parser.add_argument("--views", type=int, default=4, help="views per image (default 4)")
    parser.add_argument("--size", type=int, default=128, help="view side (default 128)")
    parser.add_argument("--load-size", type=int, default=160, help="image side (default 160)")
    parser.add_argument("--repeats", type=int, default=5, help="timed batches (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--methods", nargs="+", default=["torchvision", "own", "kornia"],
                        choices=["torchvision", "own", "kornia"])
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images, _ = render_shapes(args.images, size=args.load_size, seed=0)
    on_device = images.to(device)
    n_views = args.images * args.views
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    records = []
    for method in args.methods:
        if method == "torchvision":
            pils = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in images]
            transform = ssl_augmentation(args.size)

            def run(i: int, pils=pils, transform=transform) -> object:
                return [transform(p) for p in pils for _ in range(args.views)]

            where = torch.device("cpu")
        elif method == "own":
            augment = DeviceViews(size=args.size, views=args.views).to(device)

            def run(i: int, augment=augment) -> object:
                return augment(on_device, step=i)

            where = device
        else:
            try:
                fn = kornia_views(args.size, args.views)
            except ImportError:
                print("note: kornia is not installed (pip install 'levyjepa[bench]'); skipped")
                continue

            def run(i: int, fn=fn) -> object:
                return fn(on_device)

            where = device
        seconds = timed(run, where, warmup=args.warmup, repeats=args.repeats)
        record = {
            "bench": "augment", "method": method, "device": str(where),
            "device_name": name if where.type == "cuda" else platform.processor(),
            "threads": torch.get_num_threads(), "images": args.images, "views": args.views,
            "size": args.size, "load_size": args.load_size, "batch_s": seconds,
            "views_per_s": n_views / seconds,
        }
        records.append(record)
        print(json.dumps(record))
    print()
    print("| method | device | views/batch | batch ms (median) | views/s |")
    print("|---|---|---|---|---|")
    for r in records:
        print(f"| {r['method']} | {r['device']} | {n_views} | {r['batch_s'] * 1e3:.1f} | "
              f"{r['views_per_s']:.0f} |")
    return records


if __name__ == "__main__":
    main()
