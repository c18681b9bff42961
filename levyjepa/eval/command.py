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
from torch.utils.data import Subset

from levyjepa.atomic import atomic_write_json
from levyjepa.diagnostics import rank_metrics
from levyjepa.errors import ConfigError
from levyjepa.eval.classification import accuracy, knn_predict, linear_probe
from levyjepa.eval.features import extract_features
from levyjepa.priors.levy_sheet import LevySheetPrior
from levyjepa.registry import DATA
from levyjepa.schema import DATA_LOADER_KEYS

EVAL_FILE = "eval.json"
UNTRAINED_EVAL_FILE = "eval_untrained.json"


@dataclass
class EvalConfig:
    """Settings of an offline evaluation (see the module docstring)."""

    checkpoint: Optional[str] = None
    k: int = 20
    temperature: float = 0.07
    weight_decay: float = 1e-4
    linear_steps: int = 300
    batch_size: int = 256
    device: str = "auto"
    max_train: Optional[int] = None
    pictures: bool = True
    out: Optional[str] = None
    untrained: bool = False  # the recipe's freshly initialised encoder instead (a baseline)
    progress: bool = True


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
              "max_train": settings.max_train is None or settings.max_train >= 1}
    for key, ok in checks.items():
        if not ok:
            raise ConfigError(f"{key}={getattr(settings, key)!r} is out of range")
    return settings, recipe


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def evaluate_run(run_dir: str | Path, settings: EvalConfig,
                 recipe_overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Evaluate a run's encoder; writes ``eval.json`` (and pictures) and returns its content.

    Args:
        run_dir: The run directory.
        settings: Evaluation settings.
        recipe_overrides: Dotlist overrides of the run's recipe.

    Raises:
        ConfigError: one line naming the run, file or key at fault.
    """
    from levyjepa.trained import load_trained

    started = time.perf_counter()
    run_dir = Path(run_dir)
    run = load_trained(run_dir, checkpoint=settings.checkpoint, overrides=recipe_overrides,
                       untrained=settings.untrained)
    device = _device(settings.device)
    data_cfg = {k: v for k, v in OmegaConf.to_container(run.cfg.data).items()
                if k not in DATA_LOADER_KEYS}
    splits = DATA.build(data_cfg, where="data")
    name = data_cfg.get("name")
    if not splits.num_classes:
        raise ConfigError(f"data '{name}' is unlabelled: k-NN and the linear probe need labels")
    if splits.test is None or not len(splits.test):
        raise ConfigError(f"data '{name}' has no test split to evaluate on")
    if splits.train_eval is None:
        raise ConfigError(f"data '{name}' provides no un-augmented training split "
                          "(DataSplits.train_eval)")
    train_set = splits.train_eval
    if settings.max_train is not None and settings.max_train < len(train_set):
        train_set = Subset(train_set, range(settings.max_train))
    encoder = run.encoder.to(device)
    prior = run.prior if isinstance(run.prior, LevySheetPrior) else None
    if prior is not None:
        prior = prior.to(device)
    extract = dict(batch_size=settings.batch_size, device=device)
    label = "untrained " if settings.untrained else ""
    train_x, train_y, _ = extract_features(
        encoder, train_set, progress=settings.progress and f"{label}train features", **extract)
    test_x, test_y, ep = extract_features(
        encoder, splits.test, prior=prior, step=run.step,
        progress=settings.progress and f"{label}test features", **extract)
    classes = splits.num_classes
    knn = knn_predict(train_x, train_y, test_x, classes=classes, k=settings.k,
                      temperature=settings.temperature)
    lin_train, lin_test = linear_probe(train_x, train_y, test_x, classes=classes,
                                       weight_decay=settings.weight_decay,
                                       steps=settings.linear_steps)
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "checkpoint": str(run.checkpoint),
        "step": run.step,
        "untrained": settings.untrained,
        "n_train": len(train_x),
        "n_test": len(test_x),
        "classes": classes,
        "emb_dim": int(train_x.shape[1]),
        "knn": {"k": min(settings.k, len(train_x)), "temperature": settings.temperature,
                "top1": accuracy(knn, test_y)},
        "linear": {"weight_decay": settings.weight_decay, "steps": settings.linear_steps,
                   "train_top1": accuracy(lin_train, train_y),
                   "top1": accuracy(lin_test, test_y)},
        "test_features": {k: float(v) for k, v in rank_metrics(test_x, "emb").items()},
    }
    if ep:
        result["levy_ep"] = {fam: float(torch.cat(v).mean()) for fam, v in ep.items()}
    if settings.pictures and not settings.untrained:
        from levyjepa.pictures import write_pictures

        written = write_pictures(encoder, prior, splits, run_dir, step=run.step)
        result["pictures"] = {k: str(v) for k, v in written.items()}
    result["time_s"] = time.perf_counter() - started
    out = (Path(settings.out) if settings.out
           else run_dir / (UNTRAINED_EVAL_FILE if settings.untrained else EVAL_FILE))
    atomic_write_json(out, result)
    result["eval_file"] = str(out)
    return result


def summary_line(result: dict[str, Any]) -> str:
    """The one-line summary printed by ``python -m levyjepa.eval``."""
    knn, lin = result["knn"], result["linear"]
    what = "untrained encoder of" if result.get("untrained") else "eval"
    parts = [f"{what} {result['run_dir']} step {result['step']}",
             f"k-NN top1 {knn['top1']:.4f} (k={knn['k']}, T={knn['temperature']:g})",
             f"linear top1 {lin['top1']:.4f}",
             f"RankMe {result['test_features']['emb_rankme']:.2f}"]
    if "levy_ep" in result:
        parts.append("EP " + " ".join(f"{k} {v:.4g}" for k, v in result["levy_ep"].items()))
    return " | ".join(parts) + f" -> {result['eval_file']}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Evaluate a run; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m levyjepa.eval",
        description="k-NN and linear-probe evaluation of a run's encoder (writes eval.json).",
    )
    parser.add_argument("run_dir", help="a run directory (with config.yaml and checkpoints/)")
    parser.add_argument("overrides", nargs="*", help="key=value settings or recipe overrides")
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks")
    args = parser.parse_intermixed_args(argv)
    show_traceback = args.traceback or os.environ.get("LEVYJEPA_TRACEBACK") == "1"
    try:
        settings, recipe = parse_overrides(args.overrides)
        result = evaluate_run(args.run_dir, settings, recipe)
    except ConfigError as err:
        if show_traceback:
            raise
        print(f"levyjepa: error: {err}", file=sys.stderr)
        return 2
    print(summary_line(result))
    return 0 if math.isfinite(result["knn"]["top1"]) else 1
