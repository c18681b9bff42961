"""The evaluation tasks of ``python -m levyjepa.eval``, one function each, and their keys.

``classification`` is k-NN and a linear probe on the pooled embedding (the run's own labelled
data); ``segmentation``, ``propagation`` and ``tracking`` are the dense protocols on generated
data with exact ground truth (:mod:`levyjepa.eval.segmentation`,
:mod:`levyjepa.eval.video_tasks`). Every dense metric is reported for the evaluated encoder under
its key (``segmentation/miou``, ...) and for two baselines measured the same way, under
``baselines.untrained`` (the recipe's freshly initialised encoder) and ``baselines.pixels`` (each
patch's raw pixels as its feature vector).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from omegaconf import OmegaConf
from torch.utils.data import Subset

from levyjepa.core.errors import ConfigError
from levyjepa.data.build import build_splits
from levyjepa.data.loading.loader_options import DATA_LOADER_KEYS
from levyjepa.data.loading.splits import DataSplits
from levyjepa.diagnostics.correlation_dimension import correlation_dimension
from levyjepa.diagnostics.representation import rank_metrics
from levyjepa.eval.benchmark_tasks import BENCHMARK_TASKS
from levyjepa.eval.classification import accuracy, knn_predict, linear_probe
from levyjepa.eval.features import extract_features
from levyjepa.priors.levy_sheet import LevySheetPrior

TASKS = ("classification", "segmentation", "propagation", "tracking", *BENCHMARK_TASKS)
DENSE_KEYS = {
    "segmentation": ("miou", "pixel_acc"),
    "propagation": ("j_mean", "f_mean", "j_and_f"),
    "tracking": ("delta_avg", "occlusion_acc"),
}
"""The metric keys ``task/name`` each dense task writes."""


def parse_tasks(value: Any) -> tuple[str, ...]:
    """``task=a,b`` or ``task=[a,b]`` to a tuple of task names, in :data:`TASKS` order.

    Raises:
        ConfigError: naming an unknown task and the valid ones.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(v).strip() for v in items if str(v).strip()]
    if not names:
        raise ConfigError(f"task: empty; valid: {', '.join(TASKS)}")
    for name in names:
        if name not in TASKS:
            raise ConfigError(f"task: unknown task '{name}'; valid: {', '.join(TASKS)}")
    return tuple(t for t in TASKS if t in names)


def data_section(cfg) -> dict:
    """The run's ``data`` section without the loader keys (the data source's arguments)."""
    return {k: v for k, v in OmegaConf.to_container(cfg.data).items()
            if k not in DATA_LOADER_KEYS}


def input_size(cfg) -> int:
    """The encoder's input side: ``encoder.img_size``, else ``data.size``."""
    size = cfg.encoder.get("img_size") or cfg.data.get("size")
    if not isinstance(size, int):
        raise ConfigError("encoder.img_size: the dense tasks need the encoder's input size")
    return size


def classification(run, settings, device: torch.device
                   ) -> tuple[dict[str, Any], DataSplits, tuple[torch.Tensor, torch.Tensor]]:
    """k-NN and linear-probe accuracy of the pooled embedding on the run's own data.

    Returns:
        The result's entries, the run's data (its pictures read it) and the test features and
        labels (the UMAP picture reads them).
    """
    data_cfg = data_section(run.cfg)
    splits = build_splits(run.cfg)
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
        "n_train": len(train_x), "n_test": len(test_x), "classes": classes,
        "emb_dim": int(train_x.shape[1]),
        "knn": {"k": min(settings.k, len(train_x)), "temperature": settings.temperature,
                "top1": accuracy(knn, test_y)},
        "linear": {"weight_decay": settings.weight_decay, "steps": settings.linear_steps,
                   "train_top1": accuracy(lin_train, train_y),
                   "top1": accuracy(lin_test, test_y)},
        "test_features": {k: float(v) for k, v in rank_metrics(test_x, "emb").items()},
    }
    dimension = correlation_dimension(test_x)  # Grassberger-Procaccia, first 2000 test items
    result["test_features"]["emb_correlation_dimension"] = (
        dimension if math.isfinite(dimension) else None)
    result["classification/knn_top1"] = result["knn"]["top1"]
    result["classification/linear_top1"] = result["linear"]["top1"]
    if ep:
        result["levy_ep"] = {fam: float(torch.cat(v).mean()) for fam, v in ep.items()}
    return result, splits, (test_x, test_y)


def dense(run, encoders: dict, settings, tasks: tuple[str, ...], device: torch.device, *,
          pixels: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the dense ``tasks`` on every encoder of ``encoders`` (+ raw pixels).

    Args:
        run: The evaluated run (:class:`levyjepa.training.trained.TrainedRun`).
        encoders: ``source -> encoder``; the first is the evaluated one.
        settings: The evaluation settings.
        tasks: Dense task names.
        device: Where to run.
        pixels: Also measure the raw-pixels baseline.

    Returns:
        ``(scores, details)``: ``scores[source]["task/metric"]`` for every source, and per task
        the protocol's parameters and its examples for the pictures.
    """
    from levyjepa.eval.segmentation import run_segmentation

    data_cfg, size = data_section(run.cfg), input_size(run.cfg)
    sources = [*encoders, "pixels"] if pixels else list(encoders)
    scores: dict[str, dict[str, float]] = {name: {} for name in sources}
    details: dict[str, Any] = {}
    if "segmentation" in tasks:
        seg = run_segmentation(encoders, data_cfg, size=size, n_train=settings.seg_train,
                               n_test=settings.seg_test, iterations=settings.seg_iterations,
                               features=settings.features, batch_size=settings.batch_size,
                               device=device, seed=int(run.cfg.seed), pixels=pixels)
        for name, res in seg.pop("scores").items():
            scores[name].update({f"segmentation/{k}": float(res[k])
                                 for k in DENSE_KEYS["segmentation"]})
        details["segmentation"] = seg
    video = tuple(t for t in tasks if t in ("propagation", "tracking"))
    if video:
        from levyjepa.eval.video_tasks import clip_frames_for, evaluation_clips, run_video_tasks

        frames = clip_frames_for(run.encoder, settings.clip_frames)
        clips = evaluation_clips(data_cfg, size=size, frames=frames, count=settings.clips)
        res = run_video_tasks(encoders, clips, tasks=video, size=size,
                              features=settings.features, device=device, pixels=pixels)
        for task in video:
            for name, values in res.pop(task).items():
                scores[name].update({f"{task}/{k}": v for k, v in values.items()})
        details["video"] = res
    return scores, details
