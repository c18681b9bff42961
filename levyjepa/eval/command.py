"""``python -m levyjepa.eval``: settings, the evaluation of a run, the command line.

See :mod:`levyjepa.eval` for the protocols and the keys.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from levyjepa.core.cli_help import HelpFormatter, setting, settings_text
from levyjepa.core.errors import ConfigError
from levyjepa.eval.benchmark_tasks import BENCHMARK_TASKS, benchmarks, evaluate_encoder
from levyjepa.eval.dense_features import FEATURES
from levyjepa.eval.encoder_sources import source_kind
from levyjepa.eval.results_file import read_entries, record_entries, split_by_task, task_settings
from levyjepa.eval.tasks import DENSE_KEYS, TASKS, classification, dense, parse_tasks
from levyjepa.priors.levy_sheet import LevySheetPrior

EVAL_FILE = "eval.json"
UNTRAINED_EVAL_FILE = "eval_untrained.json"


@dataclass
class EvalConfig:
    """Settings of an offline evaluation (see the module docstring)."""

    # each field's help is a line of `python -m levyjepa.eval --help` (levyjepa/core/cli_help.py)
    checkpoint: Optional[str] = setting(None, "a checkpoint folder (null: the run's latest)")
    k: int = setting(20, "neighbours of the weighted k-NN classifier")
    temperature: float = setting(0.07, "k-NN: a neighbour's vote is exp(similarity / T)")
    weight_decay: float = setting(1e-4, "linear probe: L2 penalty weight_decay / 2 * ||W||^2")
    linear_steps: int = setting(300, "linear probe: at most this many L-BFGS iterations")
    batch_size: int = setting(256, "items per forward while extracting features")
    device: str = setting("auto", "auto, cpu or cuda")
    max_train: Optional[int] = setting(None, "use the first N training items (null: all)")
    pictures: bool = setting(True, "draw the pictures into RUN_DIR/pictures")
    umap: bool = setting(False, "classification: also a UMAP picture of the test embeddings "
                                "coloured by class (needs umap-learn: pip install "
                                "'levyjepa[umap]')")
    out: Optional[str] = setting(None, "the results file (null: RUN_DIR/eval.json, or "
                                       "RUN_DIR/eval_untrained.json with untrained=true)")
    untrained: bool = setting(False, "evaluate the recipe's freshly initialised encoder "
                                     "instead (seeded by its seed): the baseline to beat")
    progress: bool = setting(True, "progress bars while features are extracted")
    task: Any = setting("classification", f"one or several of {', '.join(TASKS)}, e.g. "
                                          "task=segmentation,tracking")
    features: str = setting("tokens", f"dense tasks: the token field, {' or '.join(FEATURES)}")
    baselines: bool = setting(True, "dense tasks: also the untrained encoder and raw pixels")
    seg_train: int = setting(512, "segmentation: probe-training scenes")
    seg_test: int = setting(256, "segmentation: test scenes")
    seg_iterations: int = setting(4000, "segmentation: AdamW steps of the probe (batch 16)")
    clips: int = setting(16, "propagation and tracking: test clips")
    clip_frames: int = setting(16, "propagation and tracking: frames per clip for an image "
                                   "encoder (a video encoder: its num_frames)")
    trackers: bool = setting(True, "log the dense pictures to the recipe's trackers")
    data_root: Optional[str] = setting(None, "benchmark tasks (davis, tapvid, voc2012, ade20k): "
                                             "the downloaded benchmark's folder")
    weights: Optional[str] = setting(None, "with a recipe file as the source: the encoder's "
                                           "weights (.safetensors or a torch state dict)")
    layers: int = setting(1, "benchmark tasks: concatenate the last N blocks' tokens")
    split: str = setting("val", "davis: the ImageSets/2017 split")
    preset: str = setting("dino", "davis: label-propagation parameters, dino, dinov3 or crw")
    short_side: Optional[int] = setting(None, "davis: frames' short side (null: the preset's, "
                                              "480 for dino)")
    size_multiple: Optional[int] = setting(None, "davis: the long side is floored to a "
                                                 "multiple of this (null: the preset's, 64)")
    query_mode: str = setting("first", "tapvid: first or strided")
    iterations: int = setting(40000, "voc2012, ade20k: training steps of the linear head")
    crop: int = setting(512, "voc2012, ade20k: training crop and sliding window, pixels")
    stride: int = setting(341, "voc2012, ade20k: sliding-window stride, pixels")
    base_size: Optional[int] = setting(512, "voc2012, ade20k: images' short side before "
                                            "cropping (null: their own size)")
    segments: int = setting(8, "video_classification: test clips per video, evenly spaced")
    views: int = setting(3, "video_classification: spatial crops per test clip")
    probe_epochs: int = setting(20, "video_classification: epochs of the attentive probe")


def parse_overrides(items: Sequence[str]) -> tuple[EvalConfig, list[str]]:
    """Split ``key=value`` items into evaluation settings and recipe overrides.

    Raises:
        ConfigError: naming the item whose value has the wrong type or is out of range.
    """
    names = {f.name for f in fields(EvalConfig)}
    cfg = OmegaConf.structured(EvalConfig)
    recipe: list[str] = []
    for item in items:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or not key:
            raise ConfigError(f"argument {item!r} is not of the form key=value")
        if key not in names:
            if "." not in key:
                raise ConfigError(f"unknown key '{key}'; valid: {', '.join(sorted(names))}, or a "
                                  "dotted recipe key such as data.root")
            recipe.append(item)
            continue
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as err:
            msg = str(getattr(err, "msg", err)).strip().splitlines()[0]
            raise ConfigError(f"{key}: {msg}") from None
    settings = EvalConfig(**OmegaConf.to_container(cfg))
    checks = {"k": settings.k >= 1, "temperature": settings.temperature > 0,
              "weight_decay": settings.weight_decay >= 0,
              "linear_steps": settings.linear_steps >= 1,
              "batch_size": settings.batch_size >= 1,
              "device": settings.device in ("auto", "cpu", "cuda"),
              "max_train": settings.max_train is None or settings.max_train >= 1,
              "features": settings.features in FEATURES,
              "seg_train": settings.seg_train >= 1, "seg_test": settings.seg_test >= 1,
              "seg_iterations": settings.seg_iterations >= 1, "clips": settings.clips >= 1,
              "clip_frames": settings.clip_frames >= 3, "layers": settings.layers >= 1,
              "preset": settings.preset in ("dino", "dinov3", "crw"),
              "query_mode": settings.query_mode in ("first", "strided"),
              "iterations": settings.iterations >= 1, "crop": settings.crop >= 1,
              "stride": 1 <= settings.stride, "segments": settings.segments >= 1,
              "base_size": settings.base_size is None or settings.base_size >= 1,
              "short_side": settings.short_side is None or settings.short_side >= 1,
              "size_multiple": settings.size_multiple is None or settings.size_multiple >= 1,
              "views": settings.views in (1, 3), "probe_epochs": settings.probe_epochs >= 1}
    for key, ok in checks.items():
        if not ok:
            valid = {"features": f"; valid: {', '.join(FEATURES)}",
                     "preset": "; valid: dino, dinov3, crw",
                     "query_mode": "; valid: first, strided",
                     "views": "; valid: 1, 3"}.get(key, "")
            raise ConfigError(f"{key}={getattr(settings, key)!r} is out of range{valid}")
    parse_tasks(settings.task)
    return settings, recipe


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def evaluate_run(run_dir: str | Path, settings: EvalConfig,
                 recipe_overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Evaluate a run's encoder on the tasks of ``settings.task``; adds one entry per task to
    ``eval.json`` (:mod:`levyjepa.eval.results_file`: earlier entries of other tasks and
    settings stay, the same task with the same settings is replaced).

    Args:
        run_dir: The run directory.
        settings: Evaluation settings.
        recipe_overrides: Dotlist overrides of the run's recipe.

    Returns:
        This evaluation's results plus ``eval_file``: metrics under ``task/metric`` keys, the
        dense baselines under ``baselines``, each task's parameters under its name.

    Raises:
        ConfigError: one line naming the run, file or key at fault.
    """
    from levyjepa.training.trained import load_trained

    started = time.perf_counter()
    run_dir = Path(run_dir)
    tasks = parse_tasks(settings.task)
    out = (Path(settings.out) if settings.out
           else run_dir / (UNTRAINED_EVAL_FILE if settings.untrained else EVAL_FILE))
    read_entries(out)  # an unreadable results file is refused before any work, never replaced
    if settings.umap and settings.pictures and not settings.untrained:
        from levyjepa.diagnostics.umap_picture import require_umap

        require_umap()  # a missing optional package is said before any work
    run = load_trained(run_dir, checkpoint=settings.checkpoint, overrides=recipe_overrides,
                       untrained=settings.untrained)
    device = _device(settings.device)
    result: dict[str, Any] = {"run_dir": str(run_dir), "checkpoint": str(run.checkpoint),
                              "step": run.step, "untrained": settings.untrained,
                              "tasks": list(tasks)}
    splits = test_features = None
    if "classification" in tasks:
        entries, splits, test_features = classification(run, settings, device)
        result.update(entries)
    dense_tasks = tuple(t for t in tasks if t != "classification" and t not in BENCHMARK_TASKS)
    result.update(benchmarks(run.encoder, tasks, settings, run_dir, device, run=run))
    details: dict[str, Any] = {}
    if dense_tasks:
        encoders = {"untrained" if settings.untrained else "trained": run.encoder}
        if settings.baselines and not settings.untrained:
            encoders["untrained"] = load_trained(run_dir, checkpoint=settings.checkpoint,
                                                 overrides=recipe_overrides,
                                                 untrained=True).encoder
        try:
            scores, details = dense(run, encoders, settings, dense_tasks, device,
                                    pixels=settings.baselines)
        except ValueError as err:  # a protocol refusing this run's data or encoder
            raise ConfigError(f"{run_dir}: task={','.join(dense_tasks)}: {err}") from None
        evaluated = next(iter(encoders))
        result.update(scores.pop(evaluated))
        if settings.baselines:
            result["baselines"] = scores
        for task, info in details.items():
            result[task] = {k: v for k, v in info.items() if k != "examples"}
    result["time_s"] = time.perf_counter() - started
    entries = [{"task": task, "checkpoint": _checkpoint_name(run.checkpoint, run_dir),
                "step": run.step, "untrained": settings.untrained, "run_dir": str(run_dir),
                "recipe_overrides": list(recipe_overrides),
                "settings": task_settings(task, settings, device=device.type),
                "time_s": result["time_s"], "result": part}
               for task, part in split_by_task(result, tasks).items()]
    record_entries(out, entries)  # the scores are safe before any picture is drawn
    if settings.pictures and not settings.untrained:
        written = {}
        if splits is not None:
            from levyjepa.diagnostics.pictures import write_pictures

            written = write_pictures(run.encoder, _levy(run), splits, run_dir, step=run.step)
        if settings.umap and test_features is not None:
            written["umap"] = _write_umap(*test_features, run, run_dir)
        if dense_tasks:
            from levyjepa.eval.dense_pictures import dense_figures, write_dense_pictures

            figures = dense_figures(details, title=f"{run_dir.name}, step {run.step}")
            written.update(write_dense_pictures(figures, run_dir, step=run.step,
                                                trackers=run.cfg.log.trackers
                                                if settings.trackers else ()))
        result["pictures"] = {k: str(v) for k, v in written.items()}
        for entry, part in zip(entries, split_by_task(result, tasks).values()):
            entry["result"] = part
        record_entries(out, entries)
    result["eval_file"] = str(out)
    return result


def _checkpoint_name(checkpoint: Any, run_dir: Path) -> Optional[str]:
    """A checkpoint as the results file names it: relative to the run directory when inside
    it (so a moved or differently spelt run directory keeps its entries' identity)."""
    if checkpoint is None:
        return None
    path = Path(checkpoint).resolve()
    try:
        return str(path.relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)


def _write_umap(test_x: torch.Tensor, test_y: torch.Tensor, run, run_dir: Path) -> Path:
    """``RUN_DIR/pictures/step_<S>_umap.png``: the test embeddings' UMAP, coloured by class."""
    from levyjepa.core.atomic import atomic_write_bytes
    from levyjepa.diagnostics.pictures import PICTURES_DIR, figure_png
    from levyjepa.diagnostics.umap_picture import plot_umap, umap_points

    points = umap_points(test_x, seed=int(run.cfg.seed))
    fig = plot_umap(points, test_y, title=f"UMAP of the test embeddings: {run_dir.name}, step "
                                          f"{run.step} ({len(points)} items)")
    path = run_dir / PICTURES_DIR / f"step_{run.step:08d}_umap.png"
    atomic_write_bytes(path, figure_png(fig))
    return path


def _levy(run) -> Optional[LevySheetPrior]:
    return run.prior if isinstance(run.prior, LevySheetPrior) else None


HEADLINE = ("/j_and_f", "/average_jaccard", "/miou", "/top1")
"""The benchmark metrics the summary line shows."""


def summary_line(result: dict[str, Any]) -> str:
    """The one-line summary printed by ``python -m levyjepa.eval``."""
    what = "untrained encoder of" if result.get("untrained") else "eval"
    step = f" step {result['step']}" if result.get("step") is not None else ""
    parts = [f"{what} {result['run_dir']}{step}"]
    if "knn" in result:
        knn, lin = result["knn"], result["linear"]
        parts += [f"k-NN top1 {knn['top1']:.4f} (k={knn['k']}, T={knn['temperature']:g})",
                  f"linear top1 {lin['top1']:.4f}",
                  f"RankMe {result['test_features']['emb_rankme']:.2f}"]
    base = result.get("baselines", {})
    for key in dense_keys(result):
        extra = ", ".join(f"{name} {vals[key]:.3f}" for name, vals in base.items() if key in vals)
        parts.append(f"{key} {result[key]:.3f}" + (f" ({extra})" if extra else ""))
    for key, value in result.items():
        if key.split("/")[0] in BENCHMARK_TASKS and key.endswith(HEADLINE):
            parts.append(f"{key} {value:.3f}")
    if "levy_ep" in result:
        parts.append("EP " + " ".join(f"{k} {v:.4g}" for k, v in result["levy_ep"].items()))
    return " | ".join(parts) + f" -> {result['eval_file']}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Evaluate a run; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m levyjepa.eval",
        description="Evaluate a run's frozen encoder: classification and dense tasks "
                    "(writes eval.json).",
        formatter_class=HelpFormatter,
        epilog=settings_text("settings (key=value, default shown; the protocols: pydoc "
                             "levyjepa.eval):", EvalConfig)
        + "\nAny other dotted key overrides the run's recipe, e.g. data.root=DIR.\n\n"
          "examples:\n  python -m levyjepa.eval runs/quickstart k=200 temperature=0.1\n"
          "  python -m levyjepa.eval RUN_DIR task=segmentation,propagation,tracking",
    )
    parser.add_argument("run_dir", metavar="source",
                        help="a run directory (config.yaml, checkpoints/), an exported encoder "
                             "(python -m levyjepa.export) or a recipe file with weights=PATH")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="settings (below) or recipe overrides")
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks")
    args = parser.parse_intermixed_args(argv)
    show_traceback = args.traceback or os.environ.get("LEVYJEPA_TRACEBACK") == "1"
    try:
        settings, recipe = parse_overrides(args.overrides)
        if source_kind(Path(args.run_dir)) == "run":
            result = evaluate_run(args.run_dir, settings, recipe)
        else:  # an exported encoder, or a recipe's encoder with weights=
            result = evaluate_encoder(args.run_dir, settings, recipe)
    except ConfigError as err:
        if show_traceback:
            raise
        print(f"levyjepa: error: {err}", file=sys.stderr)
        return 2
    print(summary_line(result))
    values = [result["knn"]["top1"]] if "knn" in result else []
    values += [result[k] for k in dense_keys(result)]
    return 0 if all(math.isfinite(v) for v in values) else 1


def dense_keys(result: dict[str, Any]) -> list[str]:
    """The dense ``task/metric`` keys of an evaluation result, in task order."""
    return [f"{task}/{name}" for task, names in DENSE_KEYS.items() for name in names
            if f"{task}/{name}" in result]
