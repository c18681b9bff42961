"""Forward + backward time of each prior at the seed's sizes, next to one encoder step.

Sizes (SPEC sections 1, 6, 7: batch 96 images x V = 4 views, ``proj_dim`` K = 16):

* ``sigreg`` on ``proj`` ``(V, N, K) = (4, 96, 16)``;
* ``levy2d`` on ``tokens_proj`` of 96 x 4 = 384 image fields of 16 x 16 tokens:
  ``(384, 16, 16, 16)``;
* ``levy3d`` on ``tokens_proj`` of 8 clips x 4 views = 32 video fields of ``T' = H' = W' = 8``:
  ``(32, 8, 8, 8, 16)``;
* the seed encoder (``vit``: ``vit_small_patch8_224`` at 128 px, SPEC section 6) on
  ``--encoder-batch`` images x 4 views (96 by default on a GPU; on a CPU a full step takes
  minutes, so the default there is 2 images, and the time per view is scaled up linearly to the
  seed's 384 views, labelled as an estimate).

Each time is the median over ``--repeats`` runs after ``--warmup`` untimed runs; a prior that is
not registered yet is reported and skipped. Run ``python benchmarks/priors.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import torch

import levyjepa
from levyjepa import ENCODERS, PRIORS

VIEWS = 4
SEED_IMAGES = 96
SEED_VIEWS = SEED_IMAGES * VIEWS

# (name, input shape, what the input is)
PRIOR_CASES: list[tuple[str, tuple[int, ...], str]] = [
    ("sigreg", (VIEWS, SEED_IMAGES, 16), "proj (V=4, N=96, K=16)"),
    ("levy2d", (SEED_VIEWS, 16, 16, 16), "tokens_proj: 96 img x 4 views, 16x16 grid, K=16"),
    ("levy3d", (8 * VIEWS, 8, 8, 8, 16), "tokens_proj: 8 clips x 4 views, 8x8x8 grid, K=16"),
]


def sync(device: torch.device) -> None:
    """Wait for queued kernels so that wall-clock times are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked (the seed's GPU setting), else nothing."""
    if bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def median_seconds(
    fn: Callable[[int], None], device: torch.device, *, warmup: int, repeats: int
) -> tuple[float, float]:
    """Median and minimum wall time of ``fn(step)`` over ``repeats`` runs after ``warmup``."""
    for step in range(warmup):
        fn(step)
    sync(device)
    times = []
    for step in range(warmup, warmup + repeats):
        start = time.perf_counter()
        fn(step)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def prior_step(
    name: str, shape: tuple[int, ...], device: torch.device, bf16: bool
) -> Callable[[int], None]:
    """One forward + backward of prior ``name`` (default arguments) on a random input."""
    prior = PRIORS.build({"name": name}).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(shape, generator=gen, device=device).requires_grad_(True)

    def run(step: int) -> None:
        x.grad = None
        with autocast(device, bf16):
            loss = prior(x, step=step)
        loss.backward()

    return run


def encoder_step(images: int, device: torch.device, bf16: bool) -> Callable[[int], None]:
    """One forward + backward of the seed encoder on ``images x 4`` views of 128 px."""
    encoder = ENCODERS.build(
        {"name": "vit", "arch": "vit_small_patch8_224", "img_size": 128, "proj_dim": 16},
        with_tokens_proj=True,
    ).to(device)
    encoder.train()
    gen = torch.Generator(device=device).manual_seed(0)
    views = torch.randn(images, VIEWS, 3, 128, 128, generator=gen, device=device)

    def run(step: int) -> None:
        encoder.zero_grad(set_to_none=True)
        with autocast(device, bf16):
            out = encoder(views)
            loss = out.proj.float().square().mean() + out.tokens_proj.float().square().mean()
        loss.backward()

    return run


def rows(args: argparse.Namespace, device: torch.device) -> Iterator[list[str]]:
    """Table rows: name, input, median ms, min ms, share of one seed encoder step."""
    encoder_ms = None
    if args.encoder_batch > 0:
        run = encoder_step(args.encoder_batch, device, args.bf16)
        med, low = median_seconds(
            run, device, warmup=min(args.warmup, 1), repeats=args.encoder_repeats
        )
        n_views = args.encoder_batch * VIEWS
        label = "vit (seed encoder)"
        yield [
            label,
            f"{n_views} views, 128 px (measured)",
            f"{med * 1e3:.1f}",
            f"{low * 1e3:.1f}",
            "100%" if n_views == SEED_VIEWS else "",
        ]
        if n_views == SEED_VIEWS:
            encoder_ms = med * 1e3
        else:
            encoder_ms = med * 1e3 * SEED_VIEWS / n_views
            yield [
                label,
                "per view (measured / views)",
                f"{med * 1e3 / n_views:.2f}",
                f"{low * 1e3 / n_views:.2f}",
                "",
            ]
            yield [
                label,
                f"ESTIMATE for {SEED_VIEWS} views (per view x {SEED_VIEWS})",
                f"{encoder_ms:.1f}",
                "",
                "100%",
            ]
    for name, shape, what in PRIOR_CASES:
        if name not in PRIORS:
            print(f"note: prior '{name}' is not registered (not implemented yet); skipped")
            continue
        med, low = median_seconds(
            prior_step(name, shape, device, args.bf16),
            device,
            warmup=args.warmup,
            repeats=args.repeats,
        )
        share = f"{100 * med * 1e3 / encoder_ms:.2f}%" if encoder_ms else ""
        yield [name, f"{what} {tuple(shape)}", f"{med * 1e3:.2f}", f"{low * 1e3:.2f}", share]


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, time everything and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per prior")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument(
        "--encoder-batch",
        type=int,
        default=None,
        help="images (x 4 views) in the encoder step; 0 skips it (default 96 on a GPU, 2 on CPU)",
    )
    parser.add_argument("--encoder-repeats", type=int, default=3, help="timed encoder steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast (default: on for CUDA, as in the seed; off on CPU)",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.encoder_batch is None:
        args.encoder_batch = SEED_IMAGES if device.type == "cuda" else 2
    if args.bf16 is None:
        args.bf16 = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"levyjepa {levyjepa.__version__}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {device} ({name or platform.machine()}), "
        f"bf16 autocast {'on' if args.bf16 else 'off'}"
    )
    print(
        f"forward + backward; median and min over {args.repeats} runs after {args.warmup} "
        f"warm-up (encoder: {args.encoder_repeats} runs); share = prior / seed encoder step"
    )
    header = ["component", "input", "median ms", "min ms", "share"]
    table = [header, *rows(args, device)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
