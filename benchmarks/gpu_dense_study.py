"""The image dense study (LeJEPA against LeJEPA + Lévy 2D, 3 seeds) in ten minutes of one GPU.

Usage::

    python benchmarks/gpu_dense_study.py OUT_DIR [--dry-run] [--parallel N] [--supervised]
    python benchmarks/gpu_dense_study.py --project-only [--utilisation U] [--supervised]

The study of ``recipes/studies/image_base_gpu10.yaml`` against ``image_levy2d_gpu10.yaml``:
ViT-S/8 on 128 px scenes (10 shape classes, a 16x16 token field), 2,000 steps of 64 scenes x 2
views per run, 3 seeds per arm, evaluated on segmentation (the trained encoder, the untrained
one and raw pixels) and classification. ``--supervised`` adds a third arm, ``supervised``
(``image_supervised_gpu10.yaml``: the same encoder, data, views and steps trained with the
labels), passed to the study as ``--reference supervised``: reported and drawn as the ceiling,
never compared. It is off by default: its three runs take the projected time from about 7.5 to
about 10 minutes (``--project-only`` prints both); a dry run has it (``--no-supervised``: not).
Three steps:

1. **Data, once.** The scenes (``levyjepa.data.generated.scenes``, the parameters the dense
   evaluation renders by default, seed 0) are rendered on every CPU core in parallel and
   written as a class-per-folder PNG tree ``OUT_DIR/scenes_<size>`` (label: the class of the
   largest visible shape), read by every run (``image_folder`` with ``data.cache``: the files'
   bytes in memory). The loader only decodes; the views are made on the GPU
   (``views.on: device``); training runs in bf16. A folder already written with the same
   parameters is reused.
2. **The runs, concurrently.** ``python -m levyjepa.study`` (called in this process) trains
   (``python -m levyjepa.run``) and evaluates (``python -m levyjepa.eval``) every (arm, seed),
   ``--parallel`` of them at once (default: every run, 6 or 9) on the one GPU: each run
   synchronises with its host once a step (the non-finite check), so a lone run leaves the GPU
   idle while it launches the next step; six fill it, and six or nine fit in its memory
   (about 7 GB each).
3. **The report.** The study writes ``study.md``, ``study.json`` and ``study.png`` into
   ``OUT_DIR`` as its runs end; the same command (``gpu_dense_study.json``'s ``command``)
   resumes it. ``OUT_DIR/gpu_dense_study.json`` records the configuration and the wall time of
   the data and of the study.

``--project-only`` prints the configuration and the projected wall time on one H100, term by
term (:mod:`gpu_dense_projection`), and what the other choice of ``--supervised`` would cost;
it runs nothing. ``--dry-run`` runs all three steps on the CPU at a tiny size (32 px scenes, a
one-block ViT, 2 steps per run, one seed), the supervised arm included: the pipeline's check.
Exit status 1 when a run fails (one line naming its log), 2 for a bad command line.
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
SUPERVISED = ("supervised", ROOT / "recipes" / "studies" / "image_supervised_gpu10.yaml")
"""The supervised reference: its name and recipe (``--reference supervised``)."""
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
        parallel: Runs trained and evaluated at once; ``None``: every run (see :func:`resolved`).
        overrides: Training overrides of every arm (``data.root`` is added).
        eval: Settings of ``python -m levyjepa.eval``.
        supervised: Add the supervised reference (:data:`SUPERVISED`) as a third arm.
    """

    size: int = 128
    train: int = 8000
    test: int = 1000
    seeds: int = 3
    parallel: Optional[int] = None
    overrides: tuple[str, ...] = ()
    eval: tuple[str, ...] = ()
    supervised: bool = False


GPU = Plan()
"""The study on one H100."""
DRY = Plan(size=32, train=16, test=8, seeds=1, supervised=True, overrides=(
    "data.batch_size=4", "data.workers=0", "views.global_size=32", "encoder.img_size=32",
    "encoder.patch_size=8", "encoder.embed_dim=32", "encoder.depth=1", "encoder.num_heads=2",
    "encoder.pool_heads=2", "encoder.emb_dim=32", "encoder.proj_hidden=32",
    "encoder.tokens_proj_hidden=32", "trainer.max_steps=2",
    "trainer.device=cpu", "trainer.cpu_threads=1", "log.progress=false", "log.trackers=[]",
    "log.pictures=false", "log.diagnostics_every=0"),
    eval=("device=cpu", "seg_train=8", "seg_test=8", "seg_iterations=2", "linear_steps=5",
          "pictures=false"))
"""The same pipeline on a CPU at a tiny size, the supervised arm included (the overrides are
every arm's, so none may be one method's own, such as ``method.sigreg``)."""


def arms(plan: Plan) -> list[tuple[str, Path]]:
    """The arms' names and recipes: the two compared ones, then the reference if asked."""
    return [*zip(NAMES, RECIPES), *([SUPERVISED] if plan.supervised else [])]


def resolved(plan: Plan) -> Plan:
    """``plan`` with ``parallel`` set: every run at once unless it says otherwise."""
    return replace(plan, parallel=plan.parallel or plan.seeds * len(arms(plan)))


def describe(plan: Plan) -> str:
    """The configuration in a few lines (of a :func:`resolved` plan)."""
    from levyjepa.config.recipe import load_recipe

    cfg = load_recipe(RECIPES[0], list(plan.overrides))
    names = [name for name, _ in arms(plan)]
    steps = cfg.trainer.epochs * (plan.train // cfg.data.batch_size)
    if cfg.trainer.max_steps is not None:
        steps = min(steps, cfg.trainer.max_steps)
    enc = cfg.encoder
    width = f"width {enc.embed_dim}, {enc.depth} blocks" if enc.embed_dim else enc.arch
    reference = f"; reference {SUPERVISED[0]}, not compared" if plan.supervised else ""
    return "\n".join([
        f"recipes: {', '.join(str(r.relative_to(ROOT)) for _, r in arms(plan))} "
        f"(arms {', '.join(names)}{reference})",
        f"data: {plan.train} + {plan.test} scenes of {plan.size} px, "
        f"{cfg.data.batch_size} scenes x {cfg.views.global_views} views a step, views on the "
        f"device, precision {cfg.trainer.precision}",
        f"encoder: {width}, patch {enc.patch_size} at {enc.img_size} px "
        f"({(enc.img_size // enc.patch_size) ** 2} tokens)",
        f"training: {steps} steps per run, {plan.seeds} seeds x {len(names)} arms = "
        f"{plan.seeds * len(names)} runs, {plan.parallel} at once",
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
    names, recipes = zip(*arms(plan))
    reference = ["--reference", SUPERVISED[0]] if plan.supervised else []
    return [*map(str, recipes), "--seeds", str(plan.seeds), "--tasks", TASKS, "--names",
            ",".join(names), *reference, "--out", str(out),
            *[f"--eval={item}" for item in plan.eval], *common]


def run_study(plan: Plan, out: Path, common: list[str]) -> list[dict[str, Any]]:
    """Train and evaluate every (arm, seed), ``plan.parallel`` at once, and write the report:
    ``python -m levyjepa.study ... --parallel N``, in this process; returns its runs.

    Raises:
        RuntimeError: the study command failed (a failed run: its one line is on stderr).
    """
    from levyjepa.study import main as study_main

    status = study_main([*study_args(plan, out, common), "--parallel", str(plan.parallel)])
    if status != 0:
        raise RuntimeError(f"python -m levyjepa.study failed with exit status {status}")
    return json.loads((out / "study.json").read_text())["runs"]


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
          f"{data_s:.1f} s; {plan.seeds * len(arms(plan))} runs, {plan.parallel} at once",
          flush=True)
    common = [f"data.root={root}", *plan.overrides]
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = threads or "1"  # the runs' host threads: a core each
    try:
        runs = run_study(plan, out, common)
    finally:
        if threads is None:
            del os.environ["OMP_NUM_THREADS"]
    total_s = time.perf_counter() - started
    runs_s = total_s - data_s
    command = ["python", "-m", "levyjepa.study", *study_args(plan, out, common),
               "--parallel", str(plan.parallel)]
    record = {"plan": asdict(plan), "command": shlex.join(command),
              "scenes": scenes, "data_s": data_s, "runs_s": runs_s, "total_s": total_s,
              "runs": [{k: r[k] for k in ("arm", "seed", "train_s", "eval_s")} for r in runs]}
    (out / "gpu_dense_study.json").write_text(json.dumps(record, indent=1))
    print(f"gpu_dense_study: {total_s:.1f} s in all (data {data_s:.1f}, runs and report "
          f"{runs_s:.1f}); wrote {out / 'study.md'}", flush=True)
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
    parser.add_argument("--parallel", type=int, help="runs at once (default: every run)")
    parser.add_argument("--supervised", action=argparse.BooleanOptionalAction,
                        help="add the supervised reference arm, 3 more runs (default: without "
                        "it, which the ten minutes leave no room for; with it in a dry run)")
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
    base = DRY if args.dry_run and not args.project_only else GPU

    def choice(supervised: bool) -> Plan:
        return resolved(replace(base, supervised=supervised,
                                parallel=args.parallel or base.parallel))

    plan = choice(base.supervised if args.supervised is None else args.supervised)
    print(describe(plan), flush=True)
    if args.project_only:
        import gpu_dense_projection as projection

        measured = projection.measure(plan, RECIPES[0])
        utilisation = args.utilisation or projection.UTILISATION
        shown, other = (projection.project(p, [r for _, r in arms(p)], utilisation=utilisation,
                                           measured=measured)
                        for p in (plan, choice(not plan.supervised)))
        flag = "--no-supervised" if plan.supervised else "--supervised"
        print(projection.projection_table(shown), projection.other_choice(shown, other, flag),
              sep="\n", flush=True)
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
