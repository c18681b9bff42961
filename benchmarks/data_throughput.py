"""Loader throughput of a folder source against the same data as tar shards and as a Hugging
Face dataset on disk, per worker count.

Usage::

    python benchmarks/data_throughput.py [--images 320] [--size 96] [--videos 24]
                                         [--workers 0 1 2] [--batch 16] [--json]

Generated data is written into a temporary folder: ``--images`` JPEGs of ``--size`` px in 10
class folders (:func:`make_images.write_tree`, quality 90) and ``--videos`` H.264 clips of 32 px
and 24 frames (:func:`levyjepa.data.generated.synthetic_video.write_synthetic_videos`), each
then written as shards (:func:`levyjepa.data.shards.writer.write_shards`, ``--shard-size``
samples per shard); the images also as a ``datasets.DatasetDict`` saved to disk (the files' bytes
in an ``Image`` column, a ``ClassLabel`` column; skipped without ``datasets``). For each worker
count, the training loader of ``image_folder``, ``image_shards`` and ``hf_dataset`` (the ``seed``
views, 2 global views of 64 px), then of ``video_folder`` and
``video_shards`` (2 views of 4 frames every 2nd, 32 px), is timed as ``benchmarks/data.py``
times a recipe's (:func:`data.measure`: the epoch sampler, one untimed batch, the rest of an
epoch timed). Reported: items/s (images/s or clips/s), the time to the first batch, and the
time to build the source (listing the folder, or reading the shards' index). Figures only, no
assertion; the machine's load changes them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine, markdown_table  # noqa: E402
from data import measure  # noqa: E402
from make_images import write_tree  # noqa: E402

from levyjepa.data.build import splits_from  # noqa: E402
from levyjepa.data.generated.synthetic_video import write_synthetic_videos  # noqa: E402
from levyjepa.data.shards.writer import write_shards  # noqa: E402

VIEWS = {"name": "seed", "global_views": 2, "global_size": 64}


def write_hf_dataset(images: Path, out: Path) -> bool:
    """The image tree (``train/``, ``val/`` of class folders) as a ``DatasetDict`` saved to
    disk, each image's file bytes unchanged; ``False`` when ``datasets`` is not installed."""
    try:
        import datasets
    except ImportError:
        print("note: datasets is not installed (pip install 'levyjepa[hub]'): hf_dataset skipped")
        return False
    classes = sorted(p.name for p in (images / "train").iterdir() if p.is_dir())
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=classes)})
    splits = {}
    for split, name in (("train", "train"), ("val", "validation")):
        files = sorted((images / split).glob("*/*"))
        rows = {"image": [{"bytes": f.read_bytes(), "path": None} for f in files],
                "label": [classes.index(f.parent.name) for f in files]}
        splits[name] = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict(splits).save_to_disk(str(out))
    return True
CLIPS = {"size": 32, "frames_per_clip": 4, "frame_step": 2, "views": 2}


def sources(root: Path, *, images: int, size: int, videos: int, shard_size: int
            ) -> list[tuple[str, dict[str, Any], Any]]:
    """Write the data; ``(label, data section, views section)`` of the four sources."""
    write_tree(root / "images", train=images, val=10, size=size, unique=min(images, 64))
    write_shards(root / "images", root / "image_shards", shard_size=shard_size)
    out = [("image_folder", {"name": "image_folder", "root": str(root / "images")}, VIEWS),
           ("image_shards", {"name": "image_shards", "root": str(root / "image_shards")},
            VIEWS)]
    if write_hf_dataset(root / "images", root / "hf_images"):
        out.append(("hf_dataset", {"name": "hf_dataset", "root": str(root / "hf_images")}, VIEWS))
    if videos:
        write_synthetic_videos(root / "videos", videos, classes=2, size=32, frames=24)
        write_shards(root / "videos", root / "video_shards", shard_size=shard_size)
        out += [("video_folder", {"name": "video_folder", "root": str(root / "videos"),
                                  **CLIPS}, None),
                ("video_shards", {"name": "video_shards", "root": str(root / "video_shards"),
                                  **CLIPS}, None)]
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse the command line, write the data, time every source and worker count."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", type=int, default=320, help="training JPEGs")
    parser.add_argument("--size", type=int, default=96, help="their side in pixels")
    parser.add_argument("--videos", type=int, default=24, help="training clips (0: none)")
    parser.add_argument("--shard-size", type=int, default=64, help="samples per shard")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=16, help="images per batch (clips: 1/4)")
    parser.add_argument("--json", action="store_true", help="JSON lines only, no table")
    args = parser.parse_args(argv)
    if min(args.images, args.size, args.shard_size, args.batch) < 1 or min(args.workers) < 0:
        parser.error("--images, --size, --shard-size and --batch must be >= 1, --workers >= 0")
    device = torch.device("cpu")
    records = []
    with tempfile.TemporaryDirectory(prefix="data_throughput_") as tmp:
        made = sources(Path(tmp), images=args.images, size=args.size, videos=args.videos,
                       shard_size=args.shard_size)
        for label, data, views in made:
            started = time.perf_counter()
            splits = splits_from(data, views, seed=0)
            build_s = time.perf_counter() - started
            batch = args.batch if views is not None else max(1, args.batch // 4)
            batches = len(splits.train) // batch - 1
            if batches < 1:
                raise SystemExit(f"{label}: {len(splits.train)} items make fewer than 2 batches "
                                 f"of {batch}; raise --images or --videos")
            for workers in args.workers:
                record = {"bench": "data_throughput", "source": label, "build_s": build_s,
                          **measure(splits, batch_size=batch, workers=workers, batches=batches,
                                    warmup=1, pin_memory=False, persistent_workers=False,
                                    device=device, seed=0),
                          "machine": machine(device)}
                records.append(record)
                emit(record)
    if not args.json:
        m = records[0]["machine"]
        print(f"\nmachine: {m['cpu']}, {m['cores']} cores, load average "
              f"{m['load_avg_1_5_15']}\n")
        rows = [[r["source"], r["workers"], f"{r['items_per_s']:.1f} {r['kind']}/s",
                 f"{r['first_batch_s']:.2f}", f"{r['build_s']:.3f}"] for r in records]
        print(markdown_table(["source", "workers", "throughput", "first batch s",
                              "build s"], rows))
    return records


if __name__ == "__main__":
    main()
