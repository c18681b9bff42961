"""Data-pipeline throughput of a recipe's training loader against the number of workers.

Usage::

    python benchmarks/data.py RECIPE [key=value ...] [--workers 0 1 2 4] [--batches N]
                              [--warmup W] [--device DEV] [--json]

For each worker count the recipe's training split is read through the loader the training loop
builds (same batch size, sampler, pinned memory and persistent workers), ``--warmup`` batches
untimed, then ``--batches`` batches timed. Reported: items/s (images/s, or clips/s when the
items are clips ``(V, C, T, H, W)``), views/s, and the time to the first batch (worker start-up,
paid at every epoch without persistent workers). With ``views.on:
device`` the loader only decodes; the device views are then timed separately on ``--device``
(views/s of :class:`levyjepa.data.views.device_views.DeviceViews` on the loaded batches), since on a
GPU they run beside the loader. Nothing is trained. Prints JSON lines, then a Markdown table
(``--json``: JSON lines only).

Examples::

    python benchmarks/data.py recipes/image_levy2d.yaml data.root=../shared/data/imagenette-160 \\
        data.batch_size=32 --workers 0 1 2
    python benchmarks/data.py recipes/image_levy2d.yaml data.root=data/imagenette-160 \\
        views.on=device --workers 2 4 8 16 --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, emit, host_rss_bytes, machine, markdown_table, median  # noqa: E402

from levyjepa.config.recipe import load_recipe  # noqa: E402
from levyjepa.data.build import build_splits  # noqa: E402
from levyjepa.data.loading.loader_options import loader_options  # noqa: E402
from levyjepa.data.loading.sampling import EpochShuffleSampler  # noqa: E402


def measure(splits: Any, *, batch_size: int, workers: int, batches: int, warmup: int,
            pin_memory: bool, persistent_workers: bool, device: torch.device,
            seed: int) -> dict[str, Any]:
    """Time ``batches`` batches of the training loader with ``workers`` workers.

    Returns:
        ``items_per_s``, ``views_per_s``, the item kind (``images`` or ``clips``), peak host RSS,
        and with device views their ``device_views_per_s``.
    """
    options = loader_options(splits.train, workers=workers, on_cuda=device.type == "cuda",
                             pin_memory=pin_memory, persistent_workers=persistent_workers)
    loader = DataLoader(splits.train, batch_size=batch_size, drop_last=True,
                        sampler=EpochShuffleSampler(len(splits.train), seed=seed), **options)
    if len(loader) < warmup + batches:
        raise SystemExit(f"only {len(loader)} batches per epoch; lower --batches or --warmup")
    started = time.perf_counter()
    it = iter(loader)
    first, _ = next(it)
    first_batch_s = time.perf_counter() - started  # worker start-up (persistent workers: once)
    for _ in range(warmup - 1):
        next(it)
    rss = host_rss_bytes()
    start = time.perf_counter()
    loaded = []
    for _ in range(batches):
        items, _ = next(it)
        loaded.append(items)
        rss = max(rss, host_rss_bytes())
    seconds = time.perf_counter() - start
    del it
    if isinstance(first, (list, tuple)):  # multi-crop: (global, local); shapes of the global
        first = first[0]
    per_item = first.shape[1:]
    views = sum(count for count, _ in splits.view_groups)  # every group's views per item
    clips = splits.device_views is None and first.dim() == 6  # (N, V, C, T, H, W)
    record: dict[str, Any] = {
        "workers": workers, "batches": batches, "batch_size": batch_size,
        "kind": "clips" if clips else "images", "item_shape": list(per_item),
        "item_dtype": str(first.dtype).replace("torch.", ""),
        "items_per_s": batches * batch_size / seconds,
        "views_per_s": batches * batch_size * views / seconds,
        "peak_rss_bytes": rss, "first_batch_s": first_batch_s,
    }
    if splits.device_views is not None:
        module = splits.device_views.to(device)
        clock = Clock(device)
        module(loaded[0].to(device), step=0)  # warm-up
        times = []
        for step, images in enumerate(loaded):
            images = images.to(device)
            t0 = clock()
            module(images, step=step)
            times.append(clock() - t0)
        record["device_views_per_s"] = batch_size * views / median(times)
        record["views_per_s"] = None  # the loader yields images; the device makes the views
    return record


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse the command line, time the loader per worker count, print JSON lines and a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("recipe", help="recipe file, e.g. recipes/image_levy2d.yaml")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. data.batch_size=32")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2],
                        help="worker counts to measure (default 0 1 2)")
    parser.add_argument("--batches", type=int, default=10, help="timed batches (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches (default 2)")
    parser.add_argument("--device", default=None,
                        help="device of the device views (default: cuda if available, else cpu)")
    parser.add_argument("--json", action="store_true", help="JSON lines only, no table")
    args = parser.parse_intermixed_args(argv)
    if args.batches < 1 or args.warmup < 1 or min(args.workers) < 0:
        parser.error("--batches and --warmup must be >= 1, --workers >= 0")
    cfg = load_recipe(args.recipe, args.overrides)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch_size = cfg.data.batch_size
    splits = build_splits(cfg)
    records = []
    for workers in args.workers:
        record = {"bench": "data", "recipe": cfg.name, "overrides": args.overrides,
                  **measure(splits, batch_size=batch_size, workers=workers,
                            batches=args.batches, warmup=args.warmup,
                            pin_memory=cfg.trainer.pin_memory,
                            persistent_workers=cfg.trainer.persistent_workers,
                            device=device, seed=cfg.seed),
                  "machine": machine(device)}
        records.append(record)
        emit(record)
    if not args.json:
        kind = records[0]["kind"]
        rows = []
        for r in records:
            views = f"{r['views_per_s']:.0f}" if r["views_per_s"] else "-"
            dev = r.get("device_views_per_s")
            rows.append([r["workers"], f"{r['items_per_s']:.1f}", views,
                         f"{dev:.0f}" if dev else "-", f"{r['first_batch_s']:.2f}",
                         f"{r['peak_rss_bytes'] / 2**20:.0f}"])
        m = records[0]["machine"]
        print(f"\n**{cfg.name}** {' '.join(args.overrides)}\n\nmachine: {m['cpu']}, "
              f"{m['cores']} cores, load average {m['load_avg_1_5_15']}; items "
              f"{records[0]['item_dtype']} {records[0]['item_shape']}\n")
        print(markdown_table(["workers", f"{kind}/s", "views/s (loader)",
                              f"device views/s ({device})", "first batch s",
                              "peak host RSS MiB"], rows))
    return records


if __name__ == "__main__":
    main()
