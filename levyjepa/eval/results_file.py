"""``eval.json``: every evaluation of a run kept side by side, each with its settings.

A run is evaluated many times: classification, then a dense task, then the same task with other
settings or at another checkpoint. Each evaluation adds one *entry per task* to the file; an
entry holds the task, the checkpoint and step, whether the encoder was the untrained one, the
recipe overrides, the settings that shape that task's numbers, when it was written, and its
results. Running the same task again with the same settings (and checkpoint, overrides) replaces
only that task's own entry; every other entry stays. Layout::

    {
      "format": 2,
      "evaluations": [                      # every entry, oldest first
        {"task": "segmentation", "checkpoint": ".../step_00000155", "step": 155,
         "untrained": false, "recipe_overrides": [], "settings": {"seg_iterations": 4000, ...},
         "written_at": "2026-12-06T20:41:07+00:00", "time_s": 41.2,
         "result": {"segmentation/miou": 0.263, "baselines": {...}, "segmentation": {...}}},
        ...
      ],
      ... the latest view (below) ...
    }

*The latest view*: the top level also holds the results of the most recently written entry of
each task, merged, as one evaluation of one checkpoint would write them (``knn``, ``linear``,
``segmentation/miou``, ``baselines``, ``pictures``, ``step``, ``tasks``, ...), restricted to the
checkpoint and encoder (trained or untrained) of the most recent entry. Readers that want "the
run's scores" (``python -m levyjepa.study``, ``report``) read it; readers that want every
evaluation read ``evaluations``. A file written by an earlier levyjepa (one flat evaluation) is
read as the entries it holds, with ``"settings": null``.

The file is replaced atomically (:mod:`levyjepa.core.atomic`), under an advisory lock on its folder
(two evaluations of one run finishing together both keep their entries), and an unreadable file
is refused before any evaluation starts, never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from levyjepa.core.atomic import atomic_write_json
from levyjepa.core.errors import ConfigError
from levyjepa.eval.benchmark_tasks import BENCHMARK_SETTINGS

FORMAT = 2
"""The layout version written in ``format``."""

TASK_SETTINGS = {
    "classification": ("k", "temperature", "weight_decay", "linear_steps", "batch_size",
                       "max_train"),
    "segmentation": ("features", "baselines", "seg_train", "seg_test", "seg_iterations",
                     "batch_size"),
    "propagation": ("features", "baselines", "clips", "clip_frames"),
    "tracking": ("features", "baselines", "clips", "clip_frames"),
}
"""The evaluation settings each task's numbers depend on (others, such as ``progress`` or
``pictures``, change nothing measured and are not part of an entry's identity)."""
TASK_SETTINGS.update(BENCHMARK_SETTINGS)

CLASSIFICATION_KEYS = ("n_train", "n_test", "classes", "emb_dim", "knn", "linear",
                       "test_features", "levy_ep")
"""Top-level result keys that belong to the classification task."""

DETAILS_KEY = {"segmentation": "segmentation", "propagation": "video", "tracking": "video",
               **{task: task for task in BENCHMARK_SETTINGS}}
"""Where each dense task's protocol parameters live in a result (video tasks share theirs)."""

PICTURE_TASK = {"eval_segmentation": "segmentation", "eval_propagation": "propagation",
                "eval_tracks": "tracking"}
"""The dense pictures' names and their tasks (every other picture is classification's)."""

RUN_KEYS = ("run_dir", "checkpoint", "step", "untrained")
"""Keys of the evaluation as a whole, repeated in every view."""


def task_settings(task: str, settings: Any, *, device: str) -> dict[str, Any]:
    """The settings that shape ``task``'s numbers, plus the device type they ran on."""
    return {**{name: getattr(settings, name) for name in TASK_SETTINGS[task]}, "device": device}


def split_by_task(result: dict[str, Any], tasks: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Cut one evaluation's flat result into each task's part.

    Args:
        result: A flat result as :func:`levyjepa.eval.command.evaluate_run` builds it.
        tasks: The tasks it ran.

    Returns:
        ``task -> its keys`` (metrics, baselines restricted to its metrics, its protocol
        parameters, its pictures).
    """
    parts: dict[str, dict[str, Any]] = {}
    for task in tasks:
        if task == "classification":
            part = {k: result[k] for k in CLASSIFICATION_KEYS if k in result}
            part.update({k: v for k, v in result.items() if k.startswith("classification/")})
        else:
            part = {k: v for k, v in result.items() if k.startswith(f"{task}/")}
            baselines = {source: {k: v for k, v in values.items() if k.startswith(f"{task}/")}
                         for source, values in result.get("baselines", {}).items()}
            if any(baselines.values()):
                part["baselines"] = {s: v for s, v in baselines.items() if v}
            if DETAILS_KEY[task] in result:
                part[DETAILS_KEY[task]] = result[DETAILS_KEY[task]]
        pictures = {name: path for name, path in result.get("pictures", {}).items()
                    if PICTURE_TASK.get(name, "classification") == task}
        if pictures:
            part["pictures"] = pictures
        parts[task] = part
    return parts


def identity(entry: dict[str, Any]) -> tuple:
    """What makes two entries the same evaluation (the newer replaces the older)."""
    return (entry["task"], entry.get("checkpoint"), bool(entry.get("untrained")),
            tuple(entry.get("recipe_overrides") or ()),
            json.dumps(entry.get("settings"), sort_keys=True))


def read_entries(path: Path) -> list[dict[str, Any]]:
    """The entries of an existing ``eval.json`` (none if it does not exist).

    Raises:
        ConfigError: the file exists but is not an evaluation file of levyjepa.
    """
    if not path.exists():
        return []
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read as an evaluation file ({err}); move it away "
                          "or write elsewhere with out=PATH") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: not an evaluation file (a JSON {type(content).__name__}, "
                          "not an object); move it away or write elsewhere with out=PATH")
    if content.get("format") == FORMAT:
        return list(content.get("evaluations", []))
    if "format" in content:
        raise ConfigError(f"{path}: written in evaluation-file format {content['format']!r}, "
                          f"this levyjepa reads format {FORMAT}; write elsewhere with out=PATH")
    return _legacy_entries(content)


def _legacy_entries(content: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries of a flat ``eval.json`` written before entries existed."""
    tasks = content.get("tasks") or (["classification"] if "knn" in content else [])
    parts = split_by_task(content, [t for t in tasks if t in TASK_SETTINGS])
    return [{"task": task, **{k: content.get(k) for k in RUN_KEYS}, "recipe_overrides": None,
             "settings": None, "written_at": None, "time_s": content.get("time_s"),
             "result": part} for task, part in parts.items()]


def latest_view(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The top-level view: the newest entry of each task, at the newest entry's checkpoint."""
    if not entries:
        return {}
    newest = entries[-1]
    same = [e for e in entries if e.get("checkpoint") == newest.get("checkpoint")
            and bool(e.get("untrained")) == bool(newest.get("untrained"))]
    by_task: dict[str, dict[str, Any]] = {}
    for entry in same:  # oldest first: later entries of a task replace earlier ones
        by_task[entry["task"]] = entry
    view: dict[str, Any] = {k: newest.get(k) for k in RUN_KEYS}
    order = list(TASK_SETTINGS)
    view["tasks"] = sorted(by_task, key=lambda t: order.index(t) if t in order else len(order))
    for task in view["tasks"]:
        for key, value in by_task[task]["result"].items():
            if key in ("baselines", "pictures"):
                merged = view.setdefault(key, {})
                if key == "baselines":
                    for source, values in value.items():
                        merged.setdefault(source, {}).update(values)
                else:
                    merged.update(value)
            else:
                view[key] = value
    return view


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an advisory lock on ``folder`` (POSIX ``flock``; a no-op where it does not exist)."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; evaluations of one run must not overlap there
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def record_entries(path: Path, new: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Add ``new`` entries to the evaluation file at ``path``, replacing their equals.

    Each entry gets ``written_at`` now. The file is rewritten atomically with its latest view.

    Returns:
        The file's new content.

    Raises:
        ConfigError: the existing file is not a readable evaluation file (it is left as it is).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with _locked(path.parent):
        entries = read_entries(path)
        for entry in new:
            entry = {**entry, "written_at": stamp}
            entries = [e for e in entries if identity(e) != identity(entry)] + [entry]
        content = {"format": FORMAT, **latest_view(entries), "evaluations": entries}
        atomic_write_json(path, content)
    return content
