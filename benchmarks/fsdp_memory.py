"""Memory per process of ``trainer.strategy=ddp`` against ``fsdp`` (FSDP2), 2 processes.

Trains the quickstart recipe (LeJEPA + the Lévy 2D prior) for a few steps with a ViT-B-sized
encoder (width 768, depth 12) on 2 CPU processes (gloo), once per strategy, and prints per
process, after the last optimiser step: the bytes of the training state it holds (its parameters,
gradients and AdamW moments: whole under ``ddp``, its shards under ``fsdp``), its resident memory
(``VmRSS``) and its high-water mark (``VmHWM``, which includes building the whole model before
it is sharded), and the wall time of the launch.

    python benchmarks/fsdp_memory.py                 # ViT-B width, 2 processes
    python benchmarks/fsdp_memory.py --depth 4       # smaller and faster
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (kB) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(args: argparse.Namespace) -> None:
    """One process of the launch: train, and print its memory after the last step (JSON)."""
    import torch

    from levyjepa.config.recipe import load_recipe
    from levyjepa.training import loop
    from levyjepa.training.sharding import local_tensor

    held: dict = {}
    build = loop.build_run
    loop.build_run = lambda cfg: held.setdefault("run", build(cfg))

    def measure(step: int) -> None:
        if step != args.steps:
            return
        run = held["run"]
        tensors = [local_tensor(p) for p in run.model.parameters()]
        tensors += [local_tensor(p.grad) for p in run.model.parameters() if p.grad is not None]
        tensors += [local_tensor(v) for state in run.optimizer.state.values()
                    for v in state.values() if isinstance(v, torch.Tensor) and v.dim() > 0]
        state_mb = sum(t.numel() * t.element_size() for t in tensors) / 2**20
        print(json.dumps({"rank": run.accelerator.process_index, "state_mb": state_mb,
                          "rss_mb": _status_mb("VmRSS"), "hwm_mb": _status_mb("VmHWM")}),
              flush=True)

    cfg = load_recipe(ROOT / "recipes" / "quickstart.yaml", [
        f"encoder.embed_dim={args.width}", f"encoder.depth={args.depth}",
        f"encoder.num_heads={args.width // 64}", "encoder.pool_heads=4",
        f"data.batch_size={args.batch}", "data.train_size=64", "data.test_size=16",
        "data.workers=0", f"trainer.max_steps={args.steps}", "trainer.eval_every=0",
        "trainer.cpu_threads=1", f"trainer.strategy={args.strategy}", f"out_dir={args.out}",
        "log.progress=false", "log.pictures=false", "log.first_look=false", "log.trackers=[]"])
    loop.train(cfg, on_step=measure)


def launch(strategy: str, args: argparse.Namespace, out: Path) -> tuple[list[dict], float]:
    """Both processes' figures and the wall time (s) of one launch."""
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2",
           "--master_port", str(args.port), __file__, "--worker", "--strategy", strategy,
           "--out", str(out), "--width", str(args.width), "--depth", str(args.depth),
           "--batch", str(args.batch), "--steps", str(args.steps)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{strategy}: the run failed:\n{proc.stderr[-2000:]}")
    found = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return sorted(found, key=lambda r: r["rank"]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--port", type=int, default=29650)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="ddp", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"ViT width {args.width}, depth {args.depth}, batch {args.batch}, {args.steps} steps, "
          "2 CPU processes; per process after the last step:")
    for strategy in ("ddp", "fsdp"):
        with tempfile.TemporaryDirectory() as tmp:
            ranks, wall = launch(strategy, args, Path(tmp) / strategy)
        for r in ranks:
            print(f"{strategy:5s} rank {r['rank']}: training state {r['state_mb']:7.0f} MB   "
                  f"RSS {r['rss_mb']:6.0f} MB   high-water {r['hwm_mb']:6.0f} MB")
        print(f"{strategy:5s} wall {wall:.1f} s")


if __name__ == "__main__":
    main()
