"""Memory and time of one training step of the seed's ViT-S/8 with and without activation
checkpointing (``trainer.activation_checkpointing``).

Each configuration runs in a fresh process: a forward and backward of the encoder on a batch of
128 px images (its pooled embedding and token field through a fixed loss), after one warm-up
step. Printed per configuration: the bytes of the tensors the forward kept for the backward
pass (counted by ``torch.autograd.graph.saved_tensors_hooks``: the activation memory), the
process's peak resident memory (``ru_maxrss``) and the median step time::

    python benchmarks/activation_memory.py --batch 8 --steps 3
    python benchmarks/activation_memory.py --batch 2 --steps 1 --arch vit_tiny_patch16_224
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def one(arch: str, batch: int, steps: int, checkpointed: bool) -> dict:
    """Run in this process: build the encoder, warm up, time ``steps`` steps."""
    import torch

    from levyjepa.encoders.activation_checkpointing import enable_activation_checkpointing
    from levyjepa.encoders.vit import ViTEncoder

    torch.manual_seed(0)
    encoder = ViTEncoder(arch=arch, img_size=128).train()
    if checkpointed:
        enable_activation_checkpointing(encoder)
    views = torch.randn(batch, 1, 3, 128, 128)
    saved, times = [0], []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    for i in range(steps + 1):
        encoder.zero_grad(set_to_none=True)
        saved[0] = 0
        started = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = encoder(views)
        loss = out.emb.square().mean() + out.tokens_proj.square().mean()
        loss.backward()
        if i:
            times.append(time.perf_counter() - started)
    return {"checkpointed": checkpointed, "saved_mb": saved[0] / 2**20,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "step_s": statistics.median(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vit_small_patch8_224")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one(args.arch, args.batch, args.steps, args.child == "on")))
        return 0
    print(f"{args.arch} at 128 px, batch {args.batch}, forward + backward, median of "
          f"{args.steps} steps after one warm-up, a fresh process each")
    print("| activation checkpointing | kept for backward (MB) | peak resident (MB) | step (s) |")
    print("|---|---|---|---|")
    for flag in ("off", "on"):
        out = subprocess.run([sys.executable, __file__, "--arch", args.arch, "--batch",
                              str(args.batch), "--steps", str(args.steps), "--child", flag],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {flag} | {r['saved_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['step_s']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
