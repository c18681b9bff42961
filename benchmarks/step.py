"""Training-step throughput of a recipe: the toolkit's loop against a plain PyTorch loop.

Usage::

    python benchmarks/step.py RECIPE [key=value ...] [--steps N] [--warmup W] [--rounds R]
                              [--json] [--no-flops] [--peak-tflops T]

Three loops run on the same recipe (same data source and loader, encoder, method, attached
priors, probe, optimiser and schedule, built the way :func:`levyjepa.training.setup.build_run`
builds them, with :func:`levyjepa.methods.build.build_method`), alternately, ``--rounds``
times (in reverse order every other round), each for ``--warmup`` untimed and ``--steps`` timed
steps:

* ``toolkit``: :func:`levyjepa.training.loop.train` itself (Accelerate, the metrics log, progress
bar,
  checks and diagnostics as the recipe sets them), timed between optimiser steps through its
  ``on_step`` hook;
* ``plain``: the same step as a bare PyTorch loop (no Accelerate, no logging): load, (views on
  the device), the method's forward under the recipe's autocast, the attached priors and the
  probe loss, backward, AdamW, schedule;
* ``phases``: the plain loop with a clock reading (after device synchronisation) between its
  phases: data wait (loading and the copy to the device), device views (``views.on: device``),
  forward (the encoder and the method's own terms), priors (the recipe's attached priors and
  the probe loss), backward, optimiser.

Every step ends with a device synchronisation, so a step's time is complete. Reported: median
step time (wall clock, and the process's CPU time, all threads: on a CPU shared with other work
the latter is the steadier measure of a loop's own cost) and views/s of each loop, the
toolkit/plain ratio (its overhead), the phase breakdown,
each prior's forward + backward time on the step's own inputs (the method's own, e.g. LeJEPA's
SIGReg on ``proj``, then every attached prior on its ``input``, and the token projector that the
Lévy prior needs) as a share of the plain step, peak host memory (RSS of the process and its
loader workers) and peak device memory, FLOPs per step (``torch.utils.flop_counter``) with the
achieved rate and, on a GPU with a known peak, the model FLOP utilisation, and the projected
wall time of the recipe's epochs. Prints JSON lines, then Markdown tables (``--json``: JSON
lines only).

Examples::

    # experiment 1 on a 2-core CPU at a small batch (4 images x 4 views, ViT-S/8 at 128 px)
    python benchmarks/step.py recipes/image_levy2d.yaml data.root=../shared/data/imagenette-160 \\
        data.batch_size=4 data.workers=0 log.trackers=[] --steps 5 --warmup 2 --rounds 2
    # the same on a GPU, full batch, views made on the GPU, compiled
    python benchmarks/step.py recipes/image_levy2d.yaml data.root=data/imagenette-160 \\
        views.on=device trainer.compile=true log.trackers=[]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Clock,
    emit,
    host_rss_bytes,
    machine,
    median,
    peak_tflops,
)
from step_pieces import (  # noqa: E402
    Pieces,
    autocast,
    batches,
    build_pieces,
    count_views,
    model_views,
    step_loss,
    to_device,
    training_device,
    view_groups_of,
)
from step_tables import PHASES, tables  # noqa: E402

from levyjepa.config.recipe import load_recipe  # noqa: E402
from levyjepa.methods.base import MethodOutput  # noqa: E402


def plain_loop(p: Pieces, *, steps: int, warmup: int, phases: bool, first_step: int
               ) -> tuple[list[dict[str, float]], Any]:
    """Run ``warmup + steps`` plain steps; per timed step, its time (and phase times).

    Returns:
        The timed steps' records (``step_s``, ``rss``, with ``phases`` every phase's seconds)
        and the method's output of the last step (for the prior timings).
    """
    clock = Clock(p.device)
    records: list[dict[str, float]] = []
    it = batches(p)
    out = None
    p.model.train()
    for i in range(warmup + steps):
        step = first_step + i
        t0 = clock()
        c0 = time.process_time()
        views, labels = next(it)
        views = to_device(views, p)
        labels = labels.to(p.device, non_blocking=p.non_blocking)
        t1 = clock() if phases else t0
        groups = model_views(p, views, step=step)
        t2 = clock() if phases else t0
        with autocast(p):
            out, logits = p.model(groups, step=step)
        t3 = clock() if phases else t0
        loss = step_loss(p, out, logits, labels, step=step)
        t4 = clock() if phases else t0
        p.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t5 = clock() if phases else t0
        p.optimizer.step()
        p.scheduler.step()
        t6 = clock()
        c6 = time.process_time()
        if i >= warmup:
            record = {"step_s": t6 - t0, "cpu_s": c6 - c0, "rss": host_rss_bytes()}
            if phases:
                record.update(zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4,
                                           t6 - t5)))
            records.append(record)
    return records, out


def toolkit_loop(cfg: DictConfig, *, steps: int, warmup: int, device: torch.device
                 ) -> list[dict[str, float]]:
    """Run :func:`levyjepa.training.loop.train` for ``warmup + steps`` steps; per timed step, its
    time."""
    from levyjepa.training.loop import train

    clock = Clock(device)
    stamps: list[tuple[float, float, float, float, int]] = []  # (step done, hook done) x
    # (wall clock, process CPU time), RSS

    class Enough(Exception):
        """Raised by the hook after the last timed step: the final evaluation and checkpoint
        are not steps, and on a CPU the evaluation alone can take minutes."""

    def on_step(step: int) -> None:
        done, cpu_done = clock(), time.process_time()
        rss = host_rss_bytes()  # a few ms (it lists the loader workers): not counted
        stamps.append((done, time.perf_counter(), cpu_done, time.process_time(), rss))
        if len(stamps) == warmup + steps:
            raise Enough

    with tempfile.TemporaryDirectory(prefix="levyjepa-bench-") as tmp:
        run_cfg = copy.deepcopy(cfg)
        OmegaConf.update(run_cfg, "out_dir", str(Path(tmp) / "run"))
        OmegaConf.update(run_cfg, "log.progress", False)
        with contextlib.suppress(Enough):
            train(run_cfg, on_step=on_step)
    return [{"step_s": b[0] - a[1], "cpu_s": b[2] - a[3], "rss": b[4]}
            for a, b in zip(stamps[warmup - 1:], stamps[warmup:])]


def prior_costs(p: Pieces, out: MethodOutput, *, repeats: int) -> list[dict[str, Any]]:
    """Forward + backward seconds of each prior (and the token projector) on ``out``'s inputs.

    The method's own SIGReg (``method.sigreg``, on ``proj``) first, then every attached prior
    on its ``input``, each named by its registered name (``term`` and ``input`` say where it
    sits), then the token projector when the encoder has one.
    """
    clock = Clock(p.device)
    outputs = out.outputs
    cases = []  # (name, term, input, module, tensor)
    sigreg = getattr(p.model.method, "sigreg", None)
    if isinstance(sigreg, torch.nn.Module) and "proj" in outputs:
        cases.append((p.cfg.method.sigreg.name, "sigreg", "proj", sigreg, outputs["proj"]))
    for term, prior in p.priors.priors.items():
        source = p.priors.attachments[term].input
        cases.append((p.cfg.priors[term].name, term, source, prior, outputs[source]))
    encoder = p.model.encoder
    if getattr(encoder, "tokens_proj", None) is not None and "tokens" in outputs:
        cases.append(("tokens_proj (read by the Lévy prior)", None, "tokens",
                      encoder.tokens_proj, outputs["tokens"]))
    results = []
    for name, term, source, module, tensor in cases:
        x = tensor.detach().clone().requires_grad_(True)
        times = []
        for r in range(repeats + 1):
            start = clock()
            with autocast(p):
                if isinstance(module, torch.nn.Module) and name.startswith("tokens_proj"):
                    y = module(x).float().square().mean()
                else:
                    y = module(x, step=r)
            y.backward()
            end = clock()
            if r:  # the first run is a warm-up
                times.append(end - start)
            x.grad = None
        results.append({"name": name, "term": term, "input": source,
                        "shape": list(tensor.shape), "fwd_bwd_s": median(times)})
    return results


def epoch_costs(p: Pieces) -> dict[str, float]:
    """Seconds of the work a recipe does at every epoch end besides steps: one evaluation pass
    over the test split (forward only, as the training loop's) and one checkpoint (model and
    optimiser state written and synced to disk, as Accelerate's ``save_state`` does)."""
    clock = Clock(p.device)
    costs: dict[str, float] = {}
    if p.test_loader is not None:
        p.model.eval()
        start = clock()
        with torch.no_grad(), autocast(p):
            for images, _ in p.test_loader:
                logits = p.model.test_logits(images.to(p.device, non_blocking=p.non_blocking))
                logits.argmax(-1).cpu()
        costs["eval_s"] = clock() - start
        p.model.train()
    with tempfile.TemporaryDirectory(prefix="levyjepa-ckpt-") as tmp:
        start = clock()
        state = {k: v.detach().contiguous() for k, v in p.model.state_dict().items()}
        save_file(state, f"{tmp}/model.safetensors")
        torch.save(p.optimizer.state_dict(), f"{tmp}/optimizer.bin")
        for name in ("model.safetensors", "optimizer.bin"):
            with open(f"{tmp}/{name}", "rb") as f:
                os.fsync(f.fileno())
        costs["checkpoint_s"] = clock() - start
    return costs


def flops_per_step(p: Pieces) -> float:
    """FLOPs of one forward + backward of the model, the method, its priors and the probe
    (the optimiser excluded)."""
    views, labels = next(iter(p.loader))
    groups = model_views(p, to_device(views, p), step=0)
    counter = FlopCounterMode(display=False)
    with counter:
        with autocast(p):
            out, logits = p.model(groups, step=0)
        step_loss(p, out, logits, labels.to(p.device), step=0).backward()
    p.optimizer.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def summarise(name: str, records: list[dict[str, float]], views_per_step: int
              ) -> dict[str, Any]:
    """Median step time, views/s and peak RSS of one loop's timed steps."""
    step_s = median([r["step_s"] for r in records])
    summary = {"loop": name, "steps": len(records), "step_s": step_s,
               "cpu_s": median([r["cpu_s"] for r in records]),
               "views_per_s": views_per_step / step_s if step_s else float("nan"),
               "peak_rss_bytes": max((r["rss"] for r in records), default=0)}
    for phase in PHASES:
        if records and phase in records[0]:
            summary[f"{phase}_s"] = median([r[phase] for r in records])
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the command line, run the loops, print JSON lines and tables; return the summary."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog="Run from the repository root; see benchmarks/README.md.")
    parser.add_argument("recipe", help="recipe file, e.g. recipes/image_levy2d.yaml")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. data.batch_size=4")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per loop and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (>= 1)")
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the loops")
    parser.add_argument("--prior-repeats", type=int, default=5, help="timed prior runs")
    parser.add_argument("--loops", nargs="+", default=["plain", "phases", "toolkit"],
                        choices=["plain", "phases", "toolkit"], help="loops to run")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    parser.add_argument("--epoch-costs", action="store_true",
                        help="time one evaluation pass and one checkpoint (per-epoch work) and "
                             "include them in the projected time")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="device peak for the FLOP utilisation (default: known GPUs' bf16)")
    parser.add_argument("--json", action="store_true", help="JSON lines only, no tables")
    parser.add_argument("--label", default=None,
                        help="name of this configuration in the records (default: overrides)")
    args = parser.parse_intermixed_args(argv)
    if args.steps < 1 or args.warmup < 1 or args.rounds < 1:
        parser.error("--steps, --warmup and --rounds must be >= 1")
    cfg = load_recipe(args.recipe, args.overrides)
    if cfg.optim.accumulate_steps != 1:  # the plain loop steps every batch
        parser.error("step.py times one batch per optimiser step: optim.accumulate_steps must "
                     f"be 1, got {cfg.optim.accumulate_steps}")
    device = training_device(cfg)
    per_step = count_views(cfg.data.batch_size, view_groups_of(cfg))
    label = {"recipe": cfg.name, "overrides": args.overrides,
             "label": args.label or " ".join(args.overrides)}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.loops}
    peaks: dict[str, int] = {}
    for round_ in range(args.rounds):
        for name in args.loops if round_ % 2 == 0 else args.loops[::-1]:  # order effects cancel
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            if name == "toolkit":
                records = toolkit_loop(cfg, steps=args.steps, warmup=args.warmup, device=device)
            else:
                pieces = build_pieces(cfg)
                records, out = plain_loop(pieces, steps=args.steps, warmup=args.warmup,
                                          phases=name == "phases", first_step=0)
            if device.type == "cuda":
                peaks[name] = max(peaks.get(name, 0), torch.cuda.max_memory_allocated(device))
            results[name] += records
            emit({"bench": "step", **label, "round": round_,
                  **summarise(name, records, per_step)})
            pieces = out = None
            gc.collect()
    # the prior timings and the FLOP count on a fresh, uncompiled copy, after one step
    pieces = build_pieces(cfg, compile=False)
    _, out = plain_loop(pieces, steps=1, warmup=0, phases=False, first_step=0)
    views_per_step = pieces.views_per_step
    loops = {name: summarise(name, records, views_per_step) for name, records in results.items()}
    for name, peak in peaks.items():
        loops[name]["peak_device_bytes"] = peak
    priors = prior_costs(pieces, out, repeats=args.prior_repeats)
    base = loops.get("plain", loops.get("phases", {})).get("step_s")
    for prior in priors:
        prior["share_of_step"] = prior["fwd_bwd_s"] / base if base else None
    flops = None if args.no_flops else flops_per_step(pieces)
    costs = epoch_costs(pieces) if args.epoch_costs else {}
    reference = loops.get("toolkit", loops.get("plain", loops.get("phases")))
    step_s = reference["step_s"]
    summary: dict[str, Any] = {
        "bench": "step_summary", **label, "machine": machine(device),
        "views_per_step": views_per_step, "steps_per_epoch": pieces.steps_per_epoch,
        "loops": loops, "priors": priors,
        "toolkit_over_plain": (loops["toolkit"]["step_s"] / loops["plain"]["step_s"]
                               if "toolkit" in loops and "plain" in loops else None),
        "toolkit_over_plain_cpu_time": (loops["toolkit"]["cpu_s"] / loops["plain"]["cpu_s"]
                                        if "toolkit" in loops and "plain" in loops else None),
        "flops_per_step": flops,
        "achieved_tflops": flops / step_s / 1e12 if flops else None,
        "projected_hours": (step_s * pieces.steps_per_epoch * cfg.trainer.epochs / 3600),
        "epochs": cfg.trainer.epochs,
        **costs,
    }
    if costs:  # evaluation every eval_every epochs, a checkpoint every epoch (the defaults)
        evals = cfg.trainer.epochs // cfg.trainer.eval_every if cfg.trainer.eval_every else 1
        ckpts = (cfg.trainer.epochs if cfg.trainer.checkpoint_every is None else
                 cfg.trainer.epochs * pieces.steps_per_epoch // cfg.trainer.checkpoint_every)
        summary["projected_hours_with_epoch_costs"] = summary["projected_hours"] + (
            evals * costs.get("eval_s", 0.0) + ckpts * costs["checkpoint_s"]) / 3600
    peak = peak_tflops(device, args.peak_tflops)
    if peak and flops:
        summary["peak_tflops"] = peak
        summary["mfu"] = summary["achieved_tflops"] / peak
    emit(summary)
    if not args.json:
        print()
        print(tables(summary))
    return summary


if __name__ == "__main__":
    main()
