"""DAVIS 2017 semi-supervised scores, computed as the official tool computes them.

The rules are those of ``davisvideochallenge/davis2017-evaluation`` (``davis2017/evaluation.py``,
``davis2017/metrics.py``, ``davis2017/utils.py``, ``evaluation_method.py``), after Perazzi et
al., "A Benchmark Dataset and Evaluation Methodology for Video Object Segmentation", CVPR 2016,
and Pont-Tuset et al., "The 2017 DAVIS Challenge on Video Object Segmentation", arXiv 1704.00675:

* the objects of a sequence are the ids ``1 .. N``, ``N`` the largest id of the first frame's
  annotation once void (255) is set to background; an id in ``1 .. N`` that is not drawn in frame
  0 still counts (it scores J = F = 1 on frames where neither mask has it, 0 where only one has);
* every frame but the first and the last is scored; void pixels of the annotation count as
  background (they are *not* left out in the semi-supervised setting);
* per object and frame: J = IoU (1 when both masks are empty), F = boundary F-measure
  (:func:`levyjepa.eval.dense_metrics.boundary_f`, boundaries by ``seg2bmap``, tolerance
  ``ceil(0.008 * diagonal)`` pixels by a disk dilation);
* per object: Mean, Recall = fraction of frames above 0.5, Decay = mean of the first minus mean
  of the last of the official tool's four bins (:func:`decay_bins`);
* global: the mean over all objects of all sequences of each statistic, J&F-Mean =
  (J-Mean + F-Mean) / 2; both CSV files are written with ``%.3f``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from levyjepa.core.atomic import atomic_write_text
from levyjepa.core.errors import ConfigError
from levyjepa.eval.benchmarks.davis_io import VOID, annotation_paths, read_annotation
from levyjepa.eval.dense_metrics import boundary_f, region_j

GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def decay_bins(n: int) -> list[slice]:
    """The official tool's four bins over ``n`` per-frame values (``davis2017/utils.py``).

    Bin ``i`` is ``values[ids[i] : ids[i + 1] + 1]`` with ``ids = round(linspace(1, n, 5)) - 1``
    (halves rounded up): consecutive bins share their end frame. For ``n = 4``, ``ids = [0, 1,
    2, 2, 3]`` and the bins are ``[v0, v1]``, ``[v1, v2]``, ``[v2]``, ``[v2, v3]``. (The official
    code stores the indices as 8-bit integers, which would overflow beyond 256 scored frames; no
    DAVIS sequence is that long, and the intended indices are used here.)

    Args:
        n: Number of scored frames (>= 1).

    Returns:
        Four slices.
    """
    if n < 1:
        raise ValueError(f"need at least one value, got {n}")
    ids = [math.floor(1 + (n - 1) * i / 4 + 0.5 + 1e-10) - 1 for i in range(5)]
    return [slice(ids[i], ids[i + 1] + 1) for i in range(4)]


def db_statistics(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, recall (fraction > 0.5) and decay (first bin's mean minus the last one's).

    Args:
        values: Per-frame J (or F) of one object over the scored frames (at least one).

    Returns:
        ``(mean, recall, decay)``.
    """
    v = np.asarray(values, dtype=np.float64)
    bins = decay_bins(len(v))
    return float(v.mean()), float((v > 0.5).mean()), float(v[bins[0]].mean() - v[bins[3]].mean())


def score_sequence(
    root: Path, results: Path, seq: str, *, bound_th: float = 0.008
) -> dict[int, tuple[list[float], list[float]]]:
    """Per-frame J and F of every object of one sequence, from its annotations and results.

    Args:
        root: The DAVIS root (``Annotations/480p/<seq>/*.png``).
        results: Folder holding ``<seq>/<name>.png`` for every annotated frame name.
        seq: The sequence.
        bound_th: Boundary tolerance (fraction of the diagonal).

    Returns:
        ``{object id: (J per scored frame, F per scored frame)}`` for ids ``1 .. N``.

    Raises:
        ConfigError: Fewer than 3 annotations, a missing or misshaped result, or a result id
            above ``N`` (which the official tool refuses too).
    """
    anns = annotation_paths(root, seq)
    if len(anns) < 3:
        raise ConfigError(f"DAVIS: sequence {seq!r} has {len(anns)} annotations; at least 3 are "
                          "needed (the first and the last are not scored)")
    first, _ = read_annotation(anns[0])
    n_obj = int(np.where(first == VOID, 0, first).max())
    scores: dict[int, tuple[list[float], list[float]]] = {k: ([], []) for k in range(1, n_obj + 1)}
    for ann in anns[1:-1]:
        gt, _ = read_annotation(ann)
        gt = np.where(gt == VOID, 0, gt)
        pred, _ = read_annotation(Path(results) / seq / ann.name)
        if pred.shape != gt.shape:
            raise ConfigError(f"DAVIS: {Path(results) / seq / ann.name} is {pred.shape}, its "
                              f"annotation {ann} is {gt.shape}")
        if int(pred.max()) > n_obj:
            raise ConfigError(f"DAVIS: {Path(results) / seq / ann.name} holds id {pred.max()}, "
                              f"above the {n_obj} objects of {anns[0]}")
        gt_t, pred_t = torch.from_numpy(gt), torch.from_numpy(pred)
        for k, (j_list, f_list) in scores.items():
            p, g = pred_t == k, gt_t == k
            j_list.append(region_j(p, g))
            f_list.append(boundary_f(p, g, bound_th=bound_th))
    return scores


def summarize(per_sequence: dict[str, dict[int, tuple[list[float], list[float]]]]) -> dict:
    """Per-object statistics and their global means (the official ``evaluation_method.py``).

    Args:
        per_sequence: ``{seq: {object id: (J per frame, F per frame)}}`` (:func:`score_sequence`).

    Returns:
        ``{"global": {column: value}, "objects": {"<seq>_<id>": {"J-Mean", "J-Recall",
        "J-Decay", "F-Mean", "F-Recall", "F-Decay"}}}``; means over all objects of all
        sequences.
    """
    objects = {}
    for seq, scores in per_sequence.items():
        for k, (j, f) in scores.items():
            jm, jr, jd = db_statistics(j)
            fm, fr, fd = db_statistics(f)
            objects[f"{seq}_{k}"] = {"J-Mean": jm, "J-Recall": jr, "J-Decay": jd,
                                     "F-Mean": fm, "F-Recall": fr, "F-Decay": fd}
    if not objects:
        raise ConfigError("DAVIS: no object to score (every first annotation is background)")
    mean = {c: float(np.mean([o[c] for o in objects.values()])) for c in GLOBAL_COLUMNS[1:]}
    glob = {"J&F-Mean": (mean["J-Mean"] + mean["F-Mean"]) / 2, **mean}
    return {"global": glob, "objects": objects}


def write_csvs(out_dir: Path, split: str, summary: dict) -> tuple[Path, Path]:
    """Write ``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv``.

    The columns and the ``%.3f`` formatting of the official ``evaluation_method.py``.

    Returns:
        The two paths.
    """
    out_dir = Path(out_dir)
    glob = summary["global"]
    g_path = out_dir / f"global_results-{split}.csv"
    atomic_write_text(g_path, ",".join(GLOBAL_COLUMNS) + "\n"
                      + ",".join(f"{glob[c]:.3f}" for c in GLOBAL_COLUMNS) + "\n")
    rows = [f"{name},{o['J-Mean']:.3f},{o['F-Mean']:.3f}" for name, o in
            summary["objects"].items()]
    s_path = out_dir / f"per-sequence_results-{split}.csv"
    atomic_write_text(s_path, "Sequence,J-Mean,F-Mean\n" + "".join(r + "\n" for r in rows))
    return g_path, s_path


def score_results(
    *,
    root: Path,
    results: Path,
    sequences: Sequence[str],
    split: str,
    out_dir: Path | None = None,
    step: Callable[[], object] | None = None,
) -> dict:
    """Score a results folder like the official tool and write its two CSV files.

    Args:
        root: The DAVIS root.
        results: Folder of ``<seq>/<frame>.png`` palette masks.
        sequences: The sequences to score, in order.
        split: Name used in the CSV file names.
        out_dir: Where the CSVs go (default ``results``).
        step: Called after each sequence (a progress bar's update).

    Returns:
        :func:`summarize`'s dictionary plus ``"csv"``: the two paths as strings.
    """
    per_sequence = {}
    for seq in sequences:
        per_sequence[seq] = score_sequence(Path(root), Path(results), seq)
        if step is not None:
            step()
    summary = summarize(per_sequence)
    paths = write_csvs(Path(results if out_dir is None else out_dir), split, summary)
    return {**summary, "csv": [str(p) for p in paths]}
