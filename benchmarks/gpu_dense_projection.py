"""The projected wall time of ``benchmarks/gpu_dense_study.py`` on one H100, by its own arithmetic.

Every term is either counted (FLOPs, with ``torch.utils.flop_counter.FlopCounterMode`` on one
step at the real size, traced with fake tensors: shapes only, no arithmetic, so the count is
instant on a CPU), measured on this CPU (scene rendering, PNG encoding and decoding, the
imports, the segmentation probe's host-side gather), or an assumption stated here with its
reason. GPU time is FLOPs divided by an assumed sustained rate:

- training, bf16 autocast: ``UTILISATION`` (20%) of the H100 SXM's dense bf16 tensor-core peak,
  989 TFLOP/s (NVIDIA H100 Tensor Core GPU datasheet: 1,979 TFLOP/s "with sparsity", half of it
  dense; ``benchmarks/common.py``). ViT-S is narrow (width 384): per token and block its
  matmuls are about 11.8 MFLOP (forward and backward) against some 70 KB of memory traffic
  of the eager elementwise operations (layer norms, GELU, residuals, drop path), which at the
  3.35 TB/s of HBM3 take about as long as the matmuls themselves at half the tensor peak;
  so about 20-25% of peak, before the optimiser, the priors and the views;
- evaluation, float32 without TF32 (``levyjepa.eval`` runs the encoder outside autocast):
  ``FP32_UTILISATION`` (50%) of the 67 TFLOP/s FP32 peak of the same datasheet.

The runs share the GPU concurrently: their GPU time adds up, their start-up, rendering and
host-side work overlap (each run on its own cores of the 16). Scene rendering measured here in
one process is scaled to ``HOST_CORES`` processes (the writer uses every core), assuming this
CPU's per-core speed.
"""

from __future__ import annotations

import functools
import io
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PEAK_BF16_TFLOPS, flop_counter  # noqa: E402

PEAK_BF16 = PEAK_BF16_TFLOPS["H100"] * 1e12
"""Dense bf16 tensor-core peak of an H100 SXM, FLOP/s."""
PEAK_FP32 = 67e12
"""FP32 (no tensor core) peak of an H100 SXM, FLOP/s (same datasheet)."""
UTILISATION = 0.20
FP32_UTILISATION = 0.50
HOST_CORES = 16
CUDA_START_S = 5.0
"""Assumed: CUDA context and first kernels of a process."""
READ_S = 2.0
"""Assumed: a run reading the scene folder's files (``data.cache``: bytes kept in memory)."""
H2D_BYTES_PER_S = 10e9
"""Assumed: pageable host-to-device copies (the segmentation probe's batches)."""
SEG_STEP_LAUNCH_S = 60 * 10e-6
"""Assumed: about 60 kernel launches of ~10 us per step of the segmentation probe."""
LBFGS_STEP_S = 5e-3
"""Assumed: one L-BFGS iteration of the linear probe (a few line-search evaluations)."""
PICTURES_S = 10.0
"""Assumed: the evaluation's pictures (matplotlib, one core)."""
CONTEXT_BYTES = 1e9
"""Assumed: a process's CUDA context and allocator slack on the GPU."""
DISK_BYTES_PER_S = 0.5e9
"""Assumed: writing a checkpoint (with its fsync)."""
REPORT_EXTRA_S = 5.0
"""Assumed: the report's statistics, tables and figure after its imports."""
BUDGET_S = 600.0


def _fake_mode():
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode(allow_non_fake_inputs=True)


def _build(recipe: Path, overrides: Sequence[str], classes: int) -> tuple[Any, Any, Any, Any]:
    """The recipe's config, training model (encoder, method, online probe) and priors, as the
    runner builds them (a method trained with the labels gets a probe that does not detach)."""
    from omegaconf import OmegaConf

    from levyjepa.config.recipe import load_recipe
    from levyjepa.core.registry import ENCODERS
    from levyjepa.methods.build import build_method, encoder_runtime
    from levyjepa.training.model import Pretrainer
    from levyjepa.training.online_probe import OnlineProbe

    cfg = load_recipe(recipe, list(overrides))
    encoder = ENCODERS.build(OmegaConf.to_container(cfg.encoder), where="encoder",
                             **encoder_runtime(cfg))
    groups = ((cfg.views.global_views, cfg.views.global_size),)
    method, priors = build_method(cfg, encoder=encoder, view_groups=groups)
    probe = OnlineProbe(emb_dim=encoder.emb_dim, classes=classes,
                        detach=not method.needs.labels_train_encoder)
    model = Pretrainer(encoder, method, probe)
    return cfg, model, priors, encoder


@functools.cache
def count_flops(recipe: Path, overrides: tuple[str, ...] = (), *, classes: int = 10
                ) -> dict[str, float]:
    """What one training step of ``recipe`` costs, counted on a trace (once per arguments).

    Built on the meta device (no weights initialised: values do not matter here) and traced on
    fake tensors (shapes only, no arithmetic), the forward under bf16 autocast. The step is the
    runner's for every method: the method's loss with its priors plus the online probe's
    cross-entropy, which reaches the encoder only for a method trained with the labels
    (``supervised``, whose own loss is a zero that keeps the encoder's graph).

    Returns:
        ``step``: FLOPs of the forward and backward of the encoder, the method, its priors and
        the online probe at the recipe's batch and view size (the optimiser and the views are
        not matmuls); ``forward``: FLOPs of the encoder's forward on one image, as the
        evaluation runs it; ``params``: trained parameters; ``saved_bytes``: the activations
        the forward keeps for the backward (each storage once).
    """
    with torch.device("meta"):
        cfg, model, priors, encoder = _build(recipe, overrides, classes)
    model, priors = model.to_empty(device="cpu"), priors.to_empty(device="cpu")
    weights = {p.untyped_storage()._cdata for p in model.parameters()}
    saved: dict[int, int] = {}

    def keep(t: torch.Tensor) -> torch.Tensor:
        if (key := t.untyped_storage()._cdata) not in weights:
            saved[key] = t.untyped_storage().nbytes()
        return t

    with _fake_mode():
        batch, views, size = cfg.data.batch_size, cfg.views.global_views, cfg.views.global_size
        x = [torch.randn(batch, views, 3, size, size)]
        labels = torch.zeros(batch, dtype=torch.long)
        with flop_counter() as step:
            with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t), \
                    torch.autocast("cpu", dtype=torch.bfloat16):
                out, logits = model(x, step=0)
                loss = priors(out.terms, out.outputs, step=0)["loss"]
            targets = labels.repeat_interleave(logits.shape[0] // batch)
            (loss + F.cross_entropy(logits.float(), targets)).backward()
        with torch.no_grad(), flop_counter() as forward:
            encoder.eval()(torch.randn(1, 1, 3, size, size))
    return {"step": float(step.get_total_flops()), "forward": float(forward.get_total_flops()),
            "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "saved_bytes": float(sum(saved.values()))}


def measure_scenes(size: int, count: int = 48) -> dict[str, float]:
    """Seconds per scene, on one core of this CPU: rendering, PNG encoding (level 1), decoding."""
    from PIL import Image

    from levyjepa.data.generated.scene_images import scene_params
    from levyjepa.data.generated.scenes import render_scenes

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        params = scene_params({"size": size})
        render_scenes(4, **params)  # warm-up
        start = time.perf_counter()
        images = render_scenes(count, first=4, **params).images
        render = (time.perf_counter() - start) / count
        arrays = images.permute(0, 2, 3, 1).numpy()
        start = time.perf_counter()
        files = []
        for array in arrays:
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
            files.append(buffer.getvalue())
        encode = (time.perf_counter() - start) / count
        start = time.perf_counter()
        for data in files:
            np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        decode = (time.perf_counter() - start) / count
    finally:
        torch.set_num_threads(threads)
    return {"render_s": render, "encode_s": encode, "decode_s": decode}


def measure_imports() -> float:
    """Wall seconds of a fresh interpreter importing what a run and its evaluation import."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import levyjepa.training.loop, "
                    "levyjepa.eval.command, timm"], check=True)
    return time.perf_counter() - start


def measure_gather(size: int, patch: int, dim: int, batch: int = 16, repeats: int = 30) -> float:
    """Seconds of the segmentation probe's host-side batch gather (features and label maps),
    on one core of this CPU, at the study's shapes."""
    grid = size // patch
    feats = torch.ones(512, grid, grid, dim)  # written: no page faults in the timing
    maps = torch.ones(512, size, size, dtype=torch.int64)
    picker = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in range(repeats + 5):  # 5 untimed
            if i == 5:
                start = time.perf_counter()
            idx = torch.randint(len(feats), (batch,), generator=picker)
            feats[idx], maps[idx].long()
    finally:
        torch.set_num_threads(threads)
    return (time.perf_counter() - start) / repeats


def measure(plan: Any, recipe: Path) -> dict[str, float]:
    """The terms measured on this CPU for ``plan`` (its first arm's ``recipe``): scenes,
    imports and the segmentation probe's gather."""
    from levyjepa.config.recipe import load_recipe

    cfg = load_recipe(recipe, list(plan.overrides))
    return {**measure_scenes(plan.size), "imports_s": measure_imports(),
            "gather_s": measure_gather(plan.size, cfg.encoder.patch_size,
                                       cfg.encoder.embed_dim or 384)}


def project(plan: Any, recipes: Sequence[Path], *, utilisation: float = UTILISATION,
            measured: Optional[dict[str, float]] = None) -> dict[str, Any]:
    """Every term of the projected wall time of ``plan`` and their total.

    Args:
        plan: The study's configuration (``gpu_dense_study.Plan``, ``parallel`` set).
        recipes: The arms' recipe files, every arm trained ``plan.seeds`` times (a reference
            arm counts as the others do).
        utilisation: Sustained fraction of the bf16 peak while training.
        measured: :func:`measure` of ``plan`` (measured now when not given).

    Returns:
        ``{"rows": [(term, seconds, how)], "total_s", "flops_per_step", "steps",
        "break_even_utilisation", "measured", ...}``.
    """
    from levyjepa.config.recipe import load_recipe
    from levyjepa.eval.command import EvalConfig

    cfg = load_recipe(recipes[0], list(plan.overrides))
    batch, epochs = cfg.data.batch_size, cfg.trainer.epochs
    steps = epochs * (plan.train // batch)
    if cfg.trainer.max_steps is not None:
        steps = min(steps, cfg.trainer.max_steps)
    runs = plan.seeds * len(recipes)
    counted = {r.stem: count_flops(r, tuple(plan.overrides)) for r in recipes}
    flops = {stem: c["step"] for stem, c in counted.items()}
    fwd, params = counted[recipes[0].stem]["forward"], counted[recipes[0].stem]["params"]
    saved = max(c["saved_bytes"] for c in counted.values())
    every = cfg.trainer.checkpoint_every or steps
    checkpoints = len({*range(every, steps + 1, every), steps})
    checkpoint_bytes = params * 12  # float32 weights and AdamW's two moments
    ev = EvalConfig()
    measured = measured or measure(plan, recipes[0])
    scenes, imports, gather = measured, measured["imports_s"], measured["gather_s"]
    dim = cfg.encoder.embed_dim or 384
    seg_bytes = 16 * ((plan.size // cfg.encoder.patch_size) ** 2 * dim * 4 + plan.size ** 2 * 8)
    seg_step = gather + seg_bytes / H2D_BYTES_PER_S + SEG_STEP_LAUNCH_S
    train_flops = plan.seeds * steps * sum(flops.values())
    rate = utilisation * PEAK_BF16
    eval_images = plan.train + plan.test + 2 * (ev.seg_train + ev.seg_test)
    waves = -(-runs // plan.parallel)  # runs that do not start at once add their host time
    again = f"; x {waves} waves of {plan.parallel} runs" if waves > 1 else ""
    ms = 1e3
    rows = [
        ("scenes written once", (plan.train + plan.test) * (scenes["render_s"]
                                                            + scenes["encode_s"]) / HOST_CORES,
         f"{plan.train + plan.test} scenes x {(scenes['render_s'] + scenes['encode_s']) * ms:.2f}"
         f" ms (render {scenes['render_s'] * ms:.2f} + PNG {scenes['encode_s'] * ms:.2f}, "
         f"measured here on one core) / {HOST_CORES} cores (as fast each)"),
        ("run start-up", waves * (imports + CUDA_START_S + READ_S),
         f"imports {imports:.1f} s (measured here) + CUDA {CUDA_START_S:.0f} s + reading the "
         f"folder's files into memory {READ_S:.0f} s (assumed){again}"),
        ("training (GPU, shared)", train_flops / rate,
         f"{plan.seeds} seeds x {steps} steps x ("
         + " + ".join(f"{v / 1e12:.2f}" for v in flops.values())
         + f") TFLOP / ({utilisation:.0%} x {PEAK_BF16 / 1e12:.0f} TFLOP/s bf16)"),
        ("checkpoints", waves * checkpoints * checkpoint_bytes / DISK_BYTES_PER_S,
         f"{checkpoints} per run x {checkpoint_bytes / 1e6:.0f} MB ({params / 1e6:.1f} M "
         f"parameters, weights and AdamW moments) at {DISK_BYTES_PER_S / 1e9:.1f} GB/s "
         f"(assumed){again}"),
        ("evaluation start-up and data", waves * (
            imports + CUDA_START_S + (plan.train + plan.test) * scenes["decode_s"]
            + (ev.seg_train + ev.seg_test) * scenes["render_s"]),
         f"imports + CUDA + {plan.train + plan.test} PNG decodes x {scenes['decode_s'] * ms:.2f}"
         f" ms + {ev.seg_train + ev.seg_test} scenes rendered (one core per run){again}"),
        ("evaluation forwards (GPU, fp32)",
         runs * eval_images * fwd / (FP32_UTILISATION * PEAK_FP32),
         f"{runs} runs x {eval_images} images x {fwd / 1e9:.1f} GFLOP / "
         f"({FP32_UTILISATION:.0%} x {PEAK_FP32 / 1e12:.0f} TFLOP/s fp32)"),
        ("segmentation probes", waves * 3 * ev.seg_iterations * seg_step,
         f"3 sources x {ev.seg_iterations} steps x {seg_step * ms:.1f} ms (gather "
         f"{gather * ms:.1f} ms measured here + {seg_bytes / 1e6:.1f} MB copied + launches); "
         f"the runs' probes at once{again}"),
        ("linear probe, pictures", waves * (ev.linear_steps * LBFGS_STEP_S + PICTURES_S),
         f"{ev.linear_steps} L-BFGS steps x {LBFGS_STEP_S * ms:.0f} ms + pictures "
         f"{PICTURES_S:.0f} s (assumed){again}"),
        ("report", imports + REPORT_EXTRA_S,
         f"the study command in the script's process: imports + the last report "
         f"{REPORT_EXTRA_S:.0f} s"),
    ]
    total = sum(seconds for _, seconds, _ in rows)
    other = total - train_flops / rate
    break_even = train_flops / (PEAK_BF16 * (BUDGET_S - other)) if other < BUDGET_S else None
    run_bytes = saved + params * 16 + CONTEXT_BYTES  # weights, gradients, AdamW moments
    each = sorted((c["saved_bytes"] + c["params"] * 16 + CONTEXT_BYTES
                   for c in counted.values() for _ in range(plan.seeds)), reverse=True)
    run_s = train_flops / rate * min(plan.parallel, runs) / runs  # one run's share of the GPU
    return {"rows": rows, "total_s": total, "flops_per_step": flops, "forward_flops": fwd,
            "steps": steps, "runs": runs, "parallel": plan.parallel, "utilisation": utilisation,
            "break_even_utilisation": break_even, "saved_bytes": saved, "run_bytes": run_bytes,
            "gpu_bytes": sum(each[:plan.parallel]), "loader_needed_per_s": steps * batch / run_s,
            "measured": measured}


def projection_table(projection: dict[str, Any]) -> str:
    """The projection as a Markdown table, its total and the break-even utilisation."""
    lines = ["| term | seconds | how |", "|---|---|---|"]
    lines += [f"| {term} | {seconds:.1f} | {how} |" for term, seconds, how in projection["rows"]]
    total = projection["total_s"]
    lines.append(f"| **total** | **{total:.1f}** | **{total / 60:.2f} min** |")
    even = projection["break_even_utilisation"]
    lines.append("")
    lines.append(f"Projected total: {total / 60:.2f} min at {projection['utilisation']:.0%} of "
                 f"the bf16 peak while training; the ten minutes are reached at "
                 + (f"{even:.1%}." if even is not None else "no utilisation."))
    parallel = min(projection["parallel"], projection["runs"])
    lines.append(f"Memory: {projection['saved_bytes'] / 1e9:.1f} GB of activations saved for the "
                 "backward (bf16 autocast, counted on the trace), "
                 f"{projection['run_bytes'] / 1e9:.1f} GB a run with weights, gradients, AdamW "
                 "and its CUDA context (at most): "
                 f"{projection['gpu_bytes'] / 1e9:.0f} GB for {parallel} at once "
                 f"(the H100 has 80).")
    lines.append(f"Loader: a run needs {projection['loader_needed_per_s']:.0f} images/s; one "
                 f"worker decodes {1 / projection['measured']['decode_s']:.0f} a second here.")
    return "\n".join(lines)


def other_choice(shown: dict[str, Any], other: dict[str, Any], flag: str) -> str:
    """One line: what the other choice (``flag``) of the projection ``shown`` would cost."""
    change = other["total_s"] - shown["total_s"]
    return (f"With {flag}: {other['runs']} runs, {min(other['parallel'], other['runs'])} at "
            f"once, projected {other['total_s'] / 60:.2f} min ({other['total_s']:.1f} s, "
            f"{change / 60:+.2f} min; {other['gpu_bytes'] / 1e9:.0f} GB at once), "
            + ("within" if other["total_s"] <= BUDGET_S else "over")
            + f" the ten minutes; at {other['utilisation']:.0%} of the bf16 peak.")
