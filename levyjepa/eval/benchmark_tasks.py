"""The field's benchmarks as tasks of ``python -m levyjepa.eval`` (and so of
``python -m levyjepa.study``): ``davis``, ``tapvid``, ``voc2012``, ``ade20k``.

Each reads the benchmark in its own layout under ``data_root=PATH``
(:mod:`levyjepa.eval.benchmarks`), scores the encoder through its feature function
(:class:`levyjepa.eval.token_features.TokenFeatures`, the last ``layers=`` blocks) and writes
its outputs (masks, CSVs, pictures) under
``<out folder>/eval/<task>/``. Its metrics land in ``eval.json`` as ``task/metric`` (for
instance ``davis/j_and_f``), its protocol details under the task's name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from levyjepa.core.errors import ConfigError

BENCHMARK_TASKS = ("davis", "tapvid", "voc2012", "ade20k", "video_classification")
"""Benchmark tasks, in the order they run."""

BENCHMARK_SETTINGS: dict[str, tuple[str, ...]] = {
    "davis": ("data_root", "split", "preset", "short_side", "size_multiple", "layers"),
    "tapvid": ("data_root", "query_mode", "layers"),
    "voc2012": ("data_root", "iterations", "crop", "stride", "base_size", "layers", "max_train"),
    "ade20k": ("data_root", "iterations", "crop", "stride", "base_size", "layers", "max_train"),
    "video_classification": ("data_root", "clip_frames", "segments", "views", "probe_epochs"),
}
"""The evaluation settings each benchmark task's numbers depend on."""

LAYOUTS = {
    "davis": "JPEGImages/480p/<seq>/, Annotations/480p/<seq>/, ImageSets/2017/<split>.txt",
    "tapvid": "a tapvid_davis.pkl file (or the folder holding it)",
    "voc2012": "JPEGImages/, SegmentationClass/, ImageSets/Segmentation/{train,val}.txt",
    "ade20k": "ADEChallengeData2016/ with images/ and annotations/ {training,validation}/",
    "video_classification": "a folder with the clip lists train.csv and val.csv ('path label' "
                            "lines)",
}
"""What ``data_root`` must point at, per task (the error message names it)."""


def _davis(features, settings, root: Path, out_dir: Path, device) -> dict[str, Any]:
    from levyjepa.eval.benchmarks.davis import evaluate_davis

    sizes = {k: getattr(settings, k) for k in ("short_side", "size_multiple")
             if getattr(settings, k) is not None}
    return evaluate_davis(features, root=root, out_dir=out_dir, split=settings.split,
                          preset=settings.preset, progress=settings.progress, **sizes)


def _tapvid(features, settings, root: Path, out_dir: Path, device) -> dict[str, Any]:
    from levyjepa.eval.benchmarks.tapvid import evaluate_tapvid

    davis = root / "tapvid_davis.pkl"
    pickle = davis if root.is_dir() and davis.is_file() else root  # else Kinetics' folder
    return evaluate_tapvid(features, pickle_path=pickle, out_dir=out_dir,
                           query_mode=settings.query_mode, progress=settings.progress)


def _semseg(dataset: str) -> Callable[..., dict[str, Any]]:
    def run(features, settings, root: Path, out_dir: Path, device) -> dict[str, Any]:
        from levyjepa.eval.benchmarks.semantic_segmentation import (
            evaluate_semantic_segmentation,
        )

        return evaluate_semantic_segmentation(
            features, dataset=dataset, root=root, out_dir=out_dir,
            iterations=settings.iterations, crop=settings.crop, stride=settings.stride,
            base_size=settings.base_size, device=device, max_train=settings.max_train,
            progress=settings.progress)
    return run


def video_classification(encoder, settings, *, out_dir: Path, device, run=None
                         ) -> dict[str, Any]:
    """The frozen attentive probe on clip lists (``data_root``), or without ``data_root`` on a
    run's own video data (``video_folder`` or ``clip_list``)."""
    from levyjepa.eval.benchmarks.video_classification import (
        benchmark_items,
        dataset_items,
        evaluate_video_classification,
    )
    from levyjepa.eval.token_features import ClipTokens

    if settings.data_root:
        root = Path(settings.data_root).expanduser()
        if not root.is_dir():
            raise ConfigError(f"data_root={root}: not found; task=video_classification expects "
                              f"{LAYOUTS['video_classification']}")
        train, val, classes = benchmark_items(root)
    elif run is not None:
        from levyjepa.data.build import build_splits

        splits = build_splits(run.cfg)
        train, val = dataset_items(splits.train_eval), dataset_items(splits.test)
        classes = splits.num_classes
    else:
        raise ConfigError("task=video_classification needs data_root=PATH (a folder with "
                          "train.csv and val.csv) or a run directory with video data")
    encode = ClipTokens(encoder, device=device)
    result = evaluate_video_classification(
        encode, train_items=train, val_items=val, num_classes=classes,
        out_dir=out_dir / "eval" / "video_classification",
        frames_per_clip=encode.frames or settings.clip_frames, resolution=encode.size,
        segments=settings.segments, views=settings.views, epochs=settings.probe_epochs,
        device=str(device), progress=settings.progress)
    return _prefixed("video_classification", result)


def _prefixed(task: str, result: dict[str, Any]) -> dict[str, Any]:
    """A protocol's result as ``eval.json`` holds it: numbers under ``task/metric``, the rest
    under ``task``."""
    numbers = {k: v for k, v in result.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    flat = {f"{task}/{k.split('/', 1)[-1]}": v for k, v in numbers.items()}
    return {**flat, task: {k.split("/", 1)[-1]: v for k, v in result.items()
                           if k not in numbers}}


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "davis": _davis, "tapvid": _tapvid, "voc2012": _semseg("voc2012"),
    "ade20k": _semseg("ade20k"),
}


def run_benchmark(task: str, features, settings, *, out_dir: Path, device) -> dict[str, Any]:
    """Run one benchmark task; its result with every metric key prefixed ``task/``.

    Args:
        task: One of :data:`BENCHMARK_TASKS`.
        features: The encoder's feature function.
        settings: The evaluation settings (``data_root`` and the task's keys).
        out_dir: Where the task writes its files (``out_dir/eval/task``).
        device: Where training-based protocols (the segmentation head) run.

    Raises:
        ConfigError: without ``data_root``, or naming the missing file and the layout.
    """
    if not settings.data_root:
        raise ConfigError(f"task={task} needs data_root=PATH: {LAYOUTS[task]}")
    root = Path(settings.data_root).expanduser()
    if not root.exists():
        raise ConfigError(f"data_root={root}: not found; task={task} expects {LAYOUTS[task]}")
    result = RUNNERS[task](features, settings, root, out_dir / "eval" / task, device)
    return _prefixed(task, result)


def benchmarks(encoder, tasks, settings, out_folder: Path, device, *, run=None
               ) -> dict[str, Any]:
    """Run the benchmark tasks among ``tasks`` on ``encoder``; their merged results (``run``:
    the trained run, whose own video data ``video_classification`` reads without
    ``data_root``)."""
    from levyjepa.eval.token_features import TokenFeatures

    result: dict[str, Any] = {}
    if "video_classification" in tasks:
        result.update(video_classification(encoder, settings, out_dir=out_folder,
                                           device=device, run=run))
    wanted = [t for t in BENCHMARK_TASKS if t in tasks and t in RUNNERS]
    if not wanted:
        return result
    try:
        features = TokenFeatures(encoder, layers=settings.layers, device=device,
                                 batch_size=min(settings.batch_size, 16))
    except ValueError as err:
        raise ConfigError(f"task={','.join(wanted)}: {err}") from None
    for task in wanted:
        result.update(run_benchmark(task, features, settings, out_dir=out_folder, device=device))
    return result


def evaluate_encoder(path: str | Path, settings, recipe_overrides=()) -> dict[str, Any]:
    """Benchmark tasks on an exported encoder or on a recipe's encoder with ``weights=``
    (:mod:`levyjepa.eval.encoder_sources`); a run directory goes through
    :func:`levyjepa.eval.command.evaluate_run` instead.

    Results go to ``settings.out`` (default: ``eval.json`` in the export folder, or beside the
    recipe file), one entry per task, and the task's files beside it under ``eval/``.

    Raises:
        ConfigError: for a task other than a benchmark, or as the task itself raises.
    """
    import time

    from levyjepa.eval.command import _device
    from levyjepa.eval.encoder_sources import open_encoder
    from levyjepa.eval.results_file import read_entries, record_entries, task_settings
    from levyjepa.eval.tasks import parse_tasks

    started = time.perf_counter()
    source = open_encoder(path, weights=settings.weights, overrides=recipe_overrides)
    tasks = parse_tasks(settings.task)
    others = [t for t in tasks if t not in BENCHMARK_TASKS]
    if others:
        raise ConfigError(f"task={','.join(others)}: needs a run directory (its data and "
                          f"recipe); an {source.kind} source takes the benchmark tasks "
                          f"{', '.join(BENCHMARK_TASKS)}")
    out = Path(settings.out) if settings.out else (
        source.path / "eval.json" if source.kind == "export"
        else source.path.with_name(f"eval_{source.path.stem}.json"))
    read_entries(out)  # an unreadable results file is refused before any work
    device = _device(settings.device)
    result: dict[str, Any] = {"run_dir": str(source.path), "checkpoint": None, "step": None,
                              "untrained": False, "tasks": list(tasks),
                              "source": {"kind": source.kind, "path": str(source.path),
                                         "weights": str(source.weights or "")}}
    result.update(benchmarks(source.encoder, tasks, settings, out.parent, device))
    result["time_s"] = time.perf_counter() - started
    entries = [{"task": task, "checkpoint": None, "step": None, "untrained": False,
                "run_dir": str(source.path), "recipe_overrides": list(recipe_overrides),
                "settings": {**task_settings(task, settings, device=device.type),
                             "weights": settings.weights},
                "time_s": result["time_s"],
                "result": {k: v for k, v in result.items()
                           if k.startswith(f"{task}/") or k == task}}
               for task in tasks]
    record_entries(out, entries)
    result["eval_file"] = str(out)
    return result
