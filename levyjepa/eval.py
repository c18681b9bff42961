"""Offline evaluation of a trained encoder: k-NN and linear probe on frozen features.

Usage::

    python -m levyjepa.eval RUN_DIR [key=value ...]

Rebuilds the encoder from ``RUN_DIR/config.yaml``, loads the latest checkpoint's weights (or
``checkpoint=PATH``), extracts the frozen pooled embeddings ``emb`` of the training split
(un-augmented: the test transform applied to the training items, ``DataSplits.train_eval``) and
of the test split, one view per image (or clip), and measures:

- **k-NN** (the weighted k-NN protocol of Z. Wu, Y. Xiong, S. X. Yu and D. Lin, "Unsupervised
  feature learning via non-parametric instance discrimination", CVPR 2018, as used by
  M. Caron et al., "Emerging properties in self-supervised vision transformers" (DINO),
  ICCV 2021): features are L2-normalised; each test feature takes the ``k`` training features
  of highest cosine similarity ``s_i``; neighbour ``i`` votes for its label with weight
  ``exp(s_i / temperature)``; the class with the largest total wins. Defaults ``k = 20``,
  ``temperature = 0.07``.
- **Linear probe**: features are standardised with the training split's mean and standard
  deviation; a multinomial logistic regression ``W x + b`` minimises the mean cross-entropy
  plus ``weight_decay / 2 * ||W||^2`` (bias not decayed) with full-batch L-BFGS (strong Wolfe
  line search, at most ``linear_steps`` iterations, from zero). Defaults
  ``weight_decay = 1e-4``, ``linear_steps = 300``. No hyper-parameter is tuned on the test split.

It also reports the effective rank of the test features (RankMe, participation ratio, smallest
per-dimension std; :mod:`levyjepa.diagnostics`) and, when the run has a Lévy-sheet prior, the
mean Epps-Pulley statistic per orientation family of the test images' token fields
``tokens_proj`` against the prior's law (the channel rotation seeded by the checkpoint's
step); and draws the pictures of :mod:`levyjepa.pictures` into ``RUN_DIR/pictures``.
Results go to ``RUN_DIR/eval.json`` (atomically) and a one-line summary is printed.

Keys (``key=value``): ``checkpoint`` (a checkpoint folder), ``k``, ``temperature``,
``weight_decay``, ``linear_steps``, ``batch_size`` (feature extraction, default 256),
``device`` (``auto``, ``cpu``, ``cuda``), ``max_train`` (use the first N training items),
``pictures`` (``true``/``false``), ``out`` (the JSON file, default ``RUN_DIR/eval.json``),
``untrained`` (``true``: evaluate the recipe's freshly initialised encoder instead, seeded by
the recipe's ``seed``, into ``RUN_DIR/eval_untrained.json``: the baseline a trained encoder
must beat), ``progress`` (progress bars while features are extracted, default ``true``).
Any other dotted key overrides the run's recipe, e.g. ``data.root=/elsewhere/imagenette``.

Examples::

    python -m levyjepa.eval runs/quickstart-20260101-120000
    python -m levyjepa.eval runs/image_levy2d k=200 temperature=0.1 data.root=path/to/imagenette-160

Errors are printed as one line, exit status 2.
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
import torch.nn.functional as F
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from levyjepa.atomic import atomic_write_json
from levyjepa.diagnostics import rank_metrics
from levyjepa.errors import ConfigError
from levyjepa.priors.cf_diagnostics import cf_diagnostics
from levyjepa.priors.levy_sheet import LevySheetPrior
from levyjepa.registry import DATA
from levyjepa.schema import DATA_LOADER_KEYS

__all__ = [
    "EVAL_FILE",
    "EvalConfig",
    "evaluate_run",
    "extract_features",
    "knn_predict",
    "linear_probe",
    "main",
]

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


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int,
    device: torch.device,
    prior: Optional[LevySheetPrior] = None,
    step: int = 0,
    progress: str = "",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, list[torch.Tensor]]]:
    """Frozen ``emb`` of every item, one view each.

    Args:
        encoder: The encoder, in eval mode.
        dataset: Items ``(x, label)``, ``x`` ``(C, H, W)`` or a clip ``(C, T, H, W)``.
        batch_size: Items per forward.
        device: Where to run the encoder.
        prior: When given, the Epps-Pulley statistic of every item's ``tokens_proj`` per family.
        step: Seeds the prior's channel rotation.
        progress: Label of a progress bar (empty: none).

    Returns:
        Features float32 ``(n, E)`` and labels int64 ``(n,)`` on CPU, and ``family ->`` list of
        per-batch statistics ``(B,)`` (empty without a prior).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    feats, labels = [], []
    stats: dict[str, list[torch.Tensor]] = {}
    encoder.eval()
    for x, y in tqdm(loader, desc=progress, leave=False, dynamic_ncols=True,
                     disable=not progress):
        out = encoder(x.unsqueeze(1).to(device))
        feats.append(out.emb.float().cpu())
        labels.append(torch.as_tensor(y).cpu())
        if prior is not None and out.tokens_proj is not None:
            for fam in cf_diagnostics(prior, out.tokens_proj.float(), step=step):
                stats.setdefault(fam.name, []).append(fam.statistic)
    return torch.cat(feats), torch.cat(labels).long(), stats


def knn_predict(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    *,
    classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> torch.Tensor:
    """Weighted k-NN on cosine similarity (Wu et al., 2018; DINO, Caron et al., 2021).

    Args:
        train_feats: ``(n, E)``.
        train_labels: ``(n,)`` in ``[0, classes)``.
        test_feats: ``(m, E)``.
        classes: Number of classes.
        k: Neighbours (capped at ``n``).
        temperature: Vote weight ``exp(similarity / temperature)``.
        chunk: Test rows per similarity block.

    Returns:
        Predicted labels ``(m,)``.
    """
    train = F.normalize(train_feats.float(), dim=1)
    k = min(k, len(train))
    preds = []
    for start in range(0, len(test_feats), chunk):
        test = F.normalize(test_feats[start:start + chunk].float(), dim=1)
        sims, idx = (test @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(test), classes)
        votes.scatter_add_(1, train_labels[idx], (sims / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def linear_probe(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    *,
    classes: int,
    weight_decay: float = 1e-4,
    steps: int = 300,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression on standardised frozen features, full-batch L-BFGS.

    Args:
        train_feats: ``(n, E)``.
        train_labels: ``(n,)``.
        test_feats: ``(m, E)``.
        classes: Number of classes.
        weight_decay: L2 penalty ``weight_decay / 2 * ||W||^2`` added to the mean cross-entropy.
        steps: Maximum L-BFGS iterations.

    Returns:
        Predicted labels of the training ``(n,)`` and test ``(m,)`` features.
    """
    x = train_feats.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mean) / std
    weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                            tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, train_labels)
        loss = loss + 0.5 * weight_decay * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        test = (test_feats.double() - mean) / std
        return (x @ weight + bias).argmax(1), (test @ weight + bias).argmax(1)


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return float((pred == labels).double().mean()) if len(labels) else float("nan")


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
                "top1": _accuracy(knn, test_y)},
        "linear": {"weight_decay": settings.weight_decay, "steps": settings.linear_steps,
                   "train_top1": _accuracy(lin_train, train_y),
                   "top1": _accuracy(lin_test, test_y)},
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


if __name__ == "__main__":
    sys.exit(main())
