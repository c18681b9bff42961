"""The image dense study (LeJEPA against LeJEPA + Lévy 2D, 3 seeds) in ten minutes of one GPU.

Usage::

    python benchmarks/gpu_dense_study.py OUT_DIR [--dry-run] [--parallel N]
    python benchmarks/gpu_dense_study.py --project-only [--utilisation U]

The study of ``recipes/studies/image_base_gpu10.yaml`` against ``image_levy2d_gpu10.yaml``:
ViT-S/8 on 128 px scenes (10 shape classes, a 16x16 token field), 2,000 steps of 64 scenes x 2
views per run, 3 seeds per arm, evaluated on segmentation (the trained encoder, the untrained
one and raw pixels) and classification. Three steps:

1. **Data, once.** The scenes (``levyjepa.data.generated.scenes``, the parameters the dense
   evaluation renders by default, seed 0) are rendered on every CPU core in parallel and
   written as a class-per-folder PNG tree ``OUT_DIR/scenes_<size>`` (label: the class of the
   largest visible shape), read by every run (``image_folder`` with ``data.cache``: the files'
   bytes in memory). The loader only decodes; the views are made on the GPU
   (``views.on: device``); training runs in bf16. A folder already written with the same
   parameters is reused.
2. **The runs, concurrently.** Every (arm, seed) is trained (``python -m levyjepa.run``) and
   evaluated (``python -m levyjepa.eval``) by the study's own code (``levyjepa.study``), all
   ``--parallel`` of them at once (default: the 6 runs) on the one GPU: each run synchronises
   with its host once a step (the non-finite check), so a lone run leaves the GPU idle while
   it launches the next step; six fill it and fit in memory (about 7 GB each).
3. **The report.** ``python -m levyjepa.study`` with the same recipes, overrides and settings
   finds every run done, skips them and writes ``study.md``, ``study.json`` and ``study.png``
   into ``OUT_DIR`` (the script checks that every run was skipped). ``OUT_DIR/gpu_dense_study.json``
   records the configuration and the wall time of each step.

``--project-only`` prints the configuration and the projected wall time on one H100, term by
term (:mod:`gpu_dense_projection`), and runs nothing. ``--dry-run`` runs all three steps on the
CPU at a tiny size (32 px scenes, a one-block ViT, 2 steps per run, one seed): the pipeline's
check. Exit status 1 when a run fails (one line naming its log), 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

RECIPES = (ROOT / "recipes" / "studies" / "image_base_gpu10.yaml",
           ROOT / "recipes" / "studies" / "image_levy2d_gpu10.yaml")
NAMES = ("lejepa", "lejepa_levy2d")
TASKS = "segmentation,classification"
SCENES_FILE = "scenes.json"
CHUNK = 250


@dataclass(frozen=True)
class Plan:
    """What the script runs.

    Attributes:
        size: Side of the scenes, in pixels.
        train: Training scenes (the folder's ``train`` split).
        test: Test scenes (``val``), for the online probe and the classification probes.
        seeds: Seeds per arm.
        parallel: Runs trained and evaluated at once.
        overrides: Training overrides of every arm (``data.root`` is added).
        eval: Settings of ``python -m levyjepa.eval``.
    """

    size: int = 128
    train: int = 8000
    test: int = 1000
    seeds: int = 3
    parallel: int = 6
    overrides: tuple[str, ...] = ()
    eval: tuple[str, ...] = ()


GPU = Plan()
"""The study on one H100."""
DRY = Plan(size=32, train=16, test=8, seeds=1, parallel=2, overrides=(
    "data.batch_size=4", "data.workers=0", "views.global_size=32", "encoder.img_size=32",
    "encoder.patch_size=8", "encoder.embed_dim=32", "encoder.depth=1", "encoder.num_heads=2",
    "encoder.pool_heads=2", "encoder.emb_dim=32", "encoder.proj_hidden=32",
    "encoder.tokens_proj_hidden=32", "method.sigreg.slices=16", "trainer.max_steps=2",
    "trainer.device=cpu", "trainer.cpu_threads=1", "log.progress=false", "log.trackers=[]",
    "log.pictures=false", "log.diagnostics_every=0"),
    eval=("device=cpu", "seg_train=8", "seg_test=8", "seg_iterations=2", "linear_steps=5",
          "pictures=false"))
"""The same pipeline on a CPU at a tiny size."""


def describe(plan: Plan) -> str:
    """The configuration in a few lines."""
    from levyjepa.config.recipe import load_recipe

    cfg = load_recipe(RECIPES[0], list(plan.overrides))
    steps = cfg.trainer.epochs * (plan.train // cfg.data.batch_size)
    if cfg.trainer.max_steps is not None:
        steps = min(steps, cfg.trainer.max_steps)
    enc = cfg.encoder
    width = f"width {enc.embed_dim}, {enc.depth} blocks" if enc.embed_dim else enc.arch
    return "\n".join([
        f"recipes: {', '.join(str(r.relative_to(ROOT)) for r in RECIPES)} "
        f"(arms {', '.join(NAMES)})",
        f"data: {plan.train} + {plan.test} scenes of {plan.size} px, "
        f"{cfg.data.batch_size} scenes x {cfg.views.global_views} views a step, views on the "
        f"device, precision {cfg.trainer.precision}",
        f"encoder: {width}, patch {enc.patch_size} at {enc.img_size} px "
        f"({(enc.img_size // enc.patch_size) ** 2} tokens)",
        f"training: {steps} steps per run, {plan.seeds} seeds x {len(RECIPES)} arms = "
        f"{plan.seeds * len(RECIPES)} runs, {plan.parallel} at once",
        f"evaluation: {TASKS}" + (f" ({' '.join(plan.eval)})" if plan.eval else ""),
    ])


def _write_chunk(root: str, split: str, first: int, count: int, params: dict) -> list[int]:
    """Render scenes ``first .. first + count - 1`` and write them as PNG files by class."""
    import torch
    from PIL import Image

    from levyjepa.data.generated.scene_images import largest_shape_class
    from levyjepa.data.generated.scenes import render_scenes

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one process per core
    try:
        scenes = render_scenes(count, first=first, **params)
    finally:
        torch.set_num_threads(threads)
    labels = largest_shape_class(scenes.semantic, params["classes"]).tolist()
    for i, (image, label) in enumerate(zip(scenes.images.permute(0, 2, 3, 1).numpy(), labels)):
        folder = Path(root) / split / f"{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
        (folder / f"{first + i:013d}.png").write_bytes(buffer.getvalue())
    return labels


def write_scenes(root: Path, plan: Plan, workers: Optional[int] = None) -> dict[str, Any]:
    """The scenes as a class-per-folder PNG tree (``train`` and ``val``), written once.

    The scene parameters are those the dense evaluation renders for a run whose data is not
    ``scenes`` (:func:`levyjepa.data.generated.scene_images.scene_params` of the image size),
    so the segmentation probe's scenes are this folder's own (its first training scenes and
    test range). Test scenes of a class without training scenes are left out.

    Returns:
        The folder's description (also ``root/scenes.json``); ``reused`` when it was there.
    """
    import multiprocessing

    from levyjepa.data.generated.scene_images import TEST_START, scene_params

    params = scene_params({"size": plan.size})
    wanted = {"params": params, "train": plan.train, "test": plan.test}
    marker = root / SCENES_FILE
    if marker.is_file():
        found = json.loads(marker.read_text())
        if {k: found.get(k) for k in wanted} == json.loads(json.dumps(wanted)):
            return {**found, "reused": True}
    shutil.rmtree(root, ignore_errors=True)
    jobs = [(str(root), "train", i, min(CHUNK, plan.train - i), params)
            for i in range(0, plan.train, CHUNK)]
    jobs += [(str(root), "val", TEST_START + i, min(CHUNK, plan.test - i), params)
             for i in range(0, plan.test, CHUNK)]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if plan.train + plan.test <= CHUNK or workers == 1:  # a tiny folder: no processes to start
        labels = [_write_chunk(*job) for job in jobs]
    else:  # forked before this process runs any parallel torch operation
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            labels = list(pool.map(_write_chunk, *zip(*jobs)))
    train_classes = {f.name for f in (root / "train").iterdir()}
    dropped = 0
    for folder in sorted((root / "val").iterdir()):
        if folder.name not in train_classes:
            dropped += len(list(folder.iterdir()))
            shutil.rmtree(folder)
    counts = [0] * params["classes"]
    train_chunks = -(-plan.train // CHUNK)
    for label in (x for chunk in labels[:train_chunks] for x in chunk):
        counts[label] += 1
    described = {**wanted, "train_per_class": counts, "test_dropped": dropped}
    marker.write_text(json.dumps(described, indent=1))
    return {**described, "reused": False}


def study_args(plan: Plan, out: Path, common: list[str]) -> list[str]:
    """The arguments of ``python -m levyjepa.study`` for this study (it writes the report)."""
    return [*map(str, RECIPES), "--seeds", str(plan.seeds), "--tasks", TASKS, "--names",
            ",".join(NAMES), "--out", str(out), *[f"--eval={item}" for item in plan.eval],
            *common]


def run_all(plan: Plan, out: Path, common: list[str]) -> list[dict[str, Any]]:
    """Train and evaluate every (arm, seed), ``plan.parallel`` at once, as the study does.

    Raises:
        levyjepa.study.RunFailed: the first failed run (the others are finished first).
    """
    from levyjepa.study import Arm, _run_one

    eval_args = ["progress=false", f"task={TASKS}", *plan.eval]  # as levyjepa.study builds them
    jobs = [(arm, seed) for seed in range(plan.seeds)
            for arm in (Arm(name, recipe) for name, recipe in zip(NAMES, RECIPES))]
    with concurrent.futures.ThreadPoolExecutor(plan.parallel) as pool:
        futures = [pool.submit(_run_one, arm, seed, out, common, eval_args)
                   for arm, seed in jobs]
        concurrent.futures.wait(futures)
    return [f.result() for f in futures]


def write_report(plan: Plan, out: Path, common: list[str]) -> str:
    """Run the study command (in this process), which must skip every run; returns its output.

    Raises:
        RuntimeError: it failed, or it trained a run again (its arguments differ from those of
            :func:`run_all`).
    """
    import contextlib

    from levyjepa.study import main as study_main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = study_main(study_args(plan, out, common))
    output = printed.getvalue()
    print(output, end="", flush=True)
    if status != 0:
        raise RuntimeError(f"python -m levyjepa.study failed with exit status {status}")
    skipped = output.count("done, skipped")
    if skipped != plan.seeds * len(RECIPES):
        raise RuntimeError(f"the study command skipped {skipped} of "
                           f"{plan.seeds * len(RECIPES)} runs: it retrained the others")
    return output


def run(plan: Plan, out: Path) -> dict[str, Any]:
    """Data, runs and report of ``plan`` into ``out``; returns what gpu_dense_study.json holds."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    root = out / f"scenes_{plan.size}"
    print(f"gpu_dense_study: writing the scenes into {root}", flush=True)
    scenes = write_scenes(root, plan)
    data_s = time.perf_counter() - started
    print(f"gpu_dense_study: scenes {'reused' if scenes['reused'] else 'written'} in "
          f"{data_s:.1f} s; {plan.seeds * len(RECIPES)} runs, {plan.parallel} at once",
          flush=True)
    common = [f"data.root={root}", *plan.overrides]
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = threads or "1"  # the runs' host threads: a core each
    try:
        runs = run_all(plan, out, common)
    finally:
        if threads is None:
            del os.environ["OMP_NUM_THREADS"]
    runs_s = time.perf_counter() - started - data_s
    print(f"gpu_dense_study: runs done in {runs_s:.1f} s; writing the report", flush=True)
    write_report(plan, out, common)
    total_s = time.perf_counter() - started
    command = ["python", "-m", "levyjepa.study", *study_args(plan, out, common)]
    record = {"plan": asdict(plan), "command": shlex.join(command),
              "scenes": scenes, "data_s": data_s, "runs_s": runs_s,
              "report_s": total_s - data_s - runs_s, "total_s": total_s,
              "runs": [{k: r[k] for k in ("arm", "seed", "train_s", "eval_s")} for r in runs]}
    (out / "gpu_dense_study.json").write_text(json.dumps(record, indent=1))
    print(f"gpu_dense_study: {total_s:.1f} s in all (data {data_s:.1f}, runs {runs_s:.1f}, "
          f"report {record['report_s']:.1f}); wrote {out / 'study.md'}", flush=True)
    return record


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line (argparse exits with status 2 on a bad one)."""
    parser = argparse.ArgumentParser(prog="python benchmarks/gpu_dense_study.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, help="folder of the report and the runs")
    parser.add_argument("--dry-run", action="store_true",
                        help="the whole pipeline on the CPU at a tiny size")
    parser.add_argument("--project-only", action="store_true",
                        help="print the projected wall time on one H100 and stop")
    parser.add_argument("--parallel", type=int, help="runs at once (default 6; 2 dry)")
    parser.add_argument("--utilisation", type=float,
                        help="sustained fraction of the bf16 peak while training (default 0.2)")
    args = parser.parse_args(argv)
    if args.out is None and not args.project_only:
        parser.error("OUT_DIR is required unless --project-only")
    if args.parallel is not None and args.parallel < 1:
        parser.error("--parallel must be at least 1")
    if args.utilisation is not None and not 0 < args.utilisation <= 1:
        parser.error("--utilisation must lie in (0, 1]")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    """Run the script; returns the exit status."""
    args = parse(list(sys.argv[1:] if argv is None else argv))
    plan = DRY if args.dry_run and not args.project_only else GPU
    if args.parallel is not None:
        plan = replace(plan, parallel=args.parallel)
    print(describe(plan), flush=True)
    if args.project_only:
        from gpu_dense_projection import UTILISATION, project, projection_table

        print(projection_table(project(plan, RECIPES, utilisation=args.utilisation
                                       or UTILISATION)), flush=True)
        return 0
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_dense_study: error: no CUDA device: this study is sized for one H100 "
              "(--dry-run runs it on the CPU at a tiny size)", file=sys.stderr)
        return 2
    from levyjepa.study import RunFailed

    try:
        run(plan, args.out)
    except (RunFailed, RuntimeError) as err:
        print(f"gpu_dense_study: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
