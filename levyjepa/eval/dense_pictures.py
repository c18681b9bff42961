"""Pictures of the dense evaluations, written next to ``eval.json`` and sent to the trackers.

* ``segmentation``: rows of test scenes, columns input | ground truth | the prediction of every
  feature source (the evaluated encoder, the untrained one, raw pixels);
* ``propagation``: a strip of frames of test clip 0, rows input | ground truth | each source's
  propagated masks;
* ``tracks``: frames of test clip 0 with the ground-truth points (circles, hollow when
  occluded) and the evaluated encoder's tracked points (crosses), their trails drawn so far.

Label maps use one fixed palette (background black), so colours mean the same in every panel.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from levyjepa.core.atomic import atomic_write_bytes
from levyjepa.diagnostics.pictures import PICTURES_DIR, figure_png

_PALETTE = np.array([
    [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
    [0, 128, 128], [220, 190, 255], [170, 110, 40]], dtype=np.uint8)
_SOURCE_NAMES = {"trained": "trained", "untrained": "untrained", "pixels": "raw pixels"}


def colour_labels(labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """Integer maps ``(..., H, W)`` to RGB ``(..., H, W, 3)`` with the fixed palette."""
    labels = np.asarray(labels)
    return _PALETTE[labels % len(_PALETTE)]


def _hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return image.transpose(1, 2, 0) if image.shape[0] == 3 else image


def _grid(rows: list[tuple[str, list[np.ndarray]]], *, title: str, col_titles: list[str]
          ) -> Figure:
    n_rows, n_cols = len(rows), max(len(r[1]) for r in rows)
    fig = Figure(figsize=(1.3 * n_cols + 0.6, 1.3 * n_rows + 0.5))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c], interpolation="nearest")
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0 and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def segmentation_figure(examples: dict[str, Any], *, title: str, count: int = 4) -> Figure:
    """Test scenes, their ground truth and every source's predicted maps (one row each)."""
    sources = list(examples["pred"])
    rows = []
    for i in range(min(count, len(examples["images"]))):
        row = [_hwc(examples["images"][i]), colour_labels(examples["truth"][i])]
        row += [colour_labels(examples["pred"][s][i]) for s in sources]
        rows.append((f"scene {i}", row))
    cols = ["input", "ground truth", *(_SOURCE_NAMES.get(s, s) for s in sources)]
    return _grid(rows, title=f"linear segmentation: {title}", col_titles=cols)


def _frames_shown(count: int, shown: int) -> list[int]:
    return sorted(set(np.linspace(0, count - 1, min(shown, count)).round().astype(int)))


def propagation_figure(video: dict[str, Any], *, title: str, shown: int = 6) -> Figure:
    """Frames of clip 0: input, ground-truth masks and every source's propagated masks."""
    ex = video["examples"]
    t = _frames_shown(len(ex["frames"]), shown)
    rows = [("input", [ex["frames"][i] for i in t]),
            ("ground truth", [colour_labels(ex["truth_masks"][i]) for i in t])]
    rows += [(_SOURCE_NAMES.get(s, s), [colour_labels(m[i]) for i in t])
             for s, m in ex["masks"].items()]
    return _grid(rows, title=f"label propagation from frame 0: {title}",
                 col_titles=[f"frame {i}" for i in t])


def tracks_figure(video: dict[str, Any], *, title: str, shown: int = 6,
                  source: str = "trained") -> Figure:
    """Frames of clip 0 with true (circles) and tracked (crosses) points and their trails."""
    ex = video["examples"]
    source = source if source in ex["tracks"] else next(iter(ex["tracks"]))
    truth, vis = np.asarray(ex["truth_tracks"]), np.asarray(ex["truth_visible"])
    pred = np.asarray(ex["tracks"][source])
    t = _frames_shown(len(ex["frames"]), shown)
    fig = Figure(figsize=(1.9 * len(t) + 0.4, 2.4))
    axes = fig.subplots(1, len(t), squeeze=False)[0]
    colours = _PALETTE[1:][np.arange(len(truth)) % (len(_PALETTE) - 1)] / 255
    size = ex["frames"].shape[1]
    for ax, i in zip(axes, t):
        ax.imshow(ex["frames"][i], interpolation="nearest", extent=(0, size, size, 0))
        for p in range(len(truth)):
            ax.plot(pred[p, : i + 1, 0], pred[p, : i + 1, 1], "-", lw=0.6, color=colours[p])
            ax.plot(*pred[p, i], "x", ms=5, mew=1.2, color=colours[p])
            ax.plot(*truth[p, i], "o", ms=5, mew=1.0, color=colours[p],
                    fillstyle="full" if vis[p, i] else "none")
        ax.set_xlim(0, size)
        ax.set_ylim(size, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"frame {i}", fontsize=8)
    fig.suptitle(f"point tracks ({_SOURCE_NAMES.get(source, source)}: x, truth: o, hollow = "
                 f"occluded): {title}", fontsize=8)
    fig.tight_layout()
    return fig


def dense_figures(details: dict[str, Any], *, title: str) -> dict[str, bytes]:
    """PNG bytes of the pictures of every dense task that ran (see the module docstring)."""
    out = {}
    if "segmentation" in details:
        out["segmentation"] = figure_png(segmentation_figure(details["segmentation"]["examples"],
                                                       title=title))
    video = details.get("video")
    if video and video["examples"]["masks"]:
        out["propagation"] = figure_png(propagation_figure(video, title=title))
    if video and video["examples"]["tracks"]:
        out["tracks"] = figure_png(tracks_figure(video, title=title))
    return out


def write_dense_pictures(figures: dict[str, bytes], run_dir: Path, *, step: int,
                         trackers: Iterable[str] = ()) -> dict[str, Path]:
    """Write ``run_dir/pictures/step_<step>_eval_<name>.png`` atomically; log to trackers.

    Args:
        figures: ``name -> PNG bytes``.
        run_dir: The run directory.
        step: Training step of the evaluated weights.
        trackers: Names of the recipe's trackers (``tensorboard``, ``wandb``) to log to.

    Returns:
        ``eval_<name> -> path``.
    """
    written = {}
    for name, data in figures.items():
        path = run_dir / PICTURES_DIR / f"step_{step:08d}_eval_{name}.png"
        atomic_write_bytes(path, data)
        written[f"eval_{name}"] = path
    trackers = list(trackers)
    if trackers:
        from levyjepa.eval.eval_trackers import log_eval_images

        log_eval_images(trackers, {f"eval/{k}": v for k, v in figures.items()}, run_dir,
                        step=step)
    return written
